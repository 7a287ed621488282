// The tracking-bead store over the MySQL protocol (mysql2), the protocol Dolt
// speaks; measured against MariaDB/InnoDB. Each bd call is one
// START TRANSACTION … COMMIT; reads are autocommit statements (read-only
// InnoDB transactions: no redo, not counted as read-write commits).
import mysql from 'mysql2/promise';
import { pooledStore } from './index.mjs';

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS issues (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    status VARCHAR(32) NOT NULL,
    priority INT NOT NULL,
    issue_type VARCHAR(32) NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    closed_at BIGINT NULL,
    close_reason TEXT NULL,
    metadata TEXT NOT NULL,
    INDEX issues_status (status)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS labels (
    issue_id VARCHAR(64) NOT NULL,
    label VARCHAR(255) NOT NULL,
    PRIMARY KEY (issue_id, label),
    INDEX labels_label (label, issue_id)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS events (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    issue_id VARCHAR(64) NOT NULL,
    event_type VARCHAR(32) NOT NULL,
    actor VARCHAR(255) NOT NULL,
    comment TEXT NULL,
    created_at BIGINT NOT NULL,
    INDEX events_issue (issue_id)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
];

export async function prepare(url) {
  const conn = await mysql.createConnection({ uri: url });
  try {
    for (const sql of SCHEMA) await conn.query(sql);
  } finally {
    await conn.end();
  }
}

export async function open(url, { poolSize = 4 } = {}) {
  const pool = mysql.createPool({ uri: url, connectionLimit: poolSize, maxIdle: poolSize, charset: 'utf8mb4' });
  return pooledStore({
    dialect: 'mariadb',
    begin: 'START TRANSACTION',
    checkout: () => pool.getConnection(),
    read: async (sql, params) => (await pool.query(sql, params))[0],
    end: () => pool.end(),
  });
}
