// The tracking-bead store on SQLite (better-sqlite3): a file in WAL mode with
// synchronous=FULL, as orderly's own SQLite sink opens it, so both designs pay
// the same price per commit and differ only in how many they make. Each bd
// call is one BEGIN IMMEDIATE transaction. The connection is synchronous and
// on the JS thread, as one bd process holds one connection at a time.
import Database from 'better-sqlite3';
import { withReads } from './index.mjs';

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS issues (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    priority INTEGER NOT NULL,
    issue_type TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    closed_at INTEGER,
    close_reason TEXT,
    metadata TEXT NOT NULL DEFAULT '{}'
  )`,
  'CREATE INDEX IF NOT EXISTS issues_status ON issues (status)',
  'CREATE TABLE IF NOT EXISTS labels (issue_id TEXT NOT NULL, label TEXT NOT NULL, PRIMARY KEY (issue_id, label))',
  'CREATE INDEX IF NOT EXISTS labels_label ON labels (label, issue_id)',
  `CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    issue_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    actor TEXT NOT NULL,
    comment TEXT,
    created_at INTEGER NOT NULL
  )`,
  'CREATE INDEX IF NOT EXISTS events_issue ON events (issue_id)',
];

/** Creates the schema (its own transaction, before anything is measured). */
export async function prepare(file) {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.transaction(() => SCHEMA.forEach((sql) => db.exec(sql))).immediate();
  } finally {
    db.close();
  }
}

export async function open(file) {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  const cache = new Map();
  const prepared = (sql) => {
    let s = cache.get(sql);
    if (!s) cache.set(sql, (s = db.prepare(sql)));
    return s;
  };
  const counts = { commits: 0, statements: 0, reads: 0 };
  const run = db.transaction((steps) => {
    for (const [sql, params] of steps) prepared(sql).run(params);
  });
  return withReads({
    dialect: 'sqlite',
    async exec(steps) {
      run.immediate(steps);
      counts.commits++;
      counts.statements += steps.length;
    },
    async query(sql, params) {
      counts.reads++;
      return prepared(sql).all(params);
    },
    stats: () => ({ ...counts }),
    async end() {
      cache.clear();
      db.close();
    },
  });
}
