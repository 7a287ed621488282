// The tracking-bead store on PostgreSQL (pg): each bd call is one
// BEGIN … COMMIT on a pooled connection; reads are single autocommit
// statements, which assign no transaction id and write no WAL.
import pg from 'pg';
import { pooledStore } from './index.mjs';

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS issues (
    id varchar(64) PRIMARY KEY,
    title text NOT NULL,
    description text NOT NULL DEFAULT '',
    status varchar(32) NOT NULL,
    priority integer NOT NULL,
    issue_type varchar(32) NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    closed_at bigint,
    close_reason text,
    metadata text NOT NULL DEFAULT '{}'
  )`,
  'CREATE INDEX IF NOT EXISTS issues_status ON issues (status)',
  'CREATE TABLE IF NOT EXISTS labels (issue_id varchar(64) NOT NULL, label varchar(255) NOT NULL, PRIMARY KEY (issue_id, label))',
  'CREATE INDEX IF NOT EXISTS labels_label ON labels (label, issue_id)',
  `CREATE TABLE IF NOT EXISTS events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    issue_id varchar(64) NOT NULL,
    event_type varchar(32) NOT NULL,
    actor varchar(255) NOT NULL,
    comment text,
    created_at bigint NOT NULL
  )`,
  'CREATE INDEX IF NOT EXISTS events_issue ON events (issue_id)',
];

/** `?` placeholders to `$1, $2, …`. */
function numbered(sql) {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

export async function prepare(url) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('BEGIN');
    for (const sql of SCHEMA) await client.query(sql);
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}

/** Gas City runs dispatches in goroutines, each bd call its own process: a few connections. */
export async function open(url, { poolSize = 4 } = {}) {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, application_name: 'tracking-bead' });
  pool.on('error', () => undefined);
  return pooledStore({
    dialect: 'postgres',
    begin: 'BEGIN',
    toDriver: numbered,
    checkout: () => pool.connect(),
    read: async (sql, params) => (await pool.query(sql, params)).rows,
    end: () => pool.end(),
  });
}
