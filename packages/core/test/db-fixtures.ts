// Shared by the db*.test.ts files: real databases (a SQLite file, a MariaDB server started by
// scripts/mariadb.sh unless NODEPOOL_TEST_MYSQL names one), a fresh database per test, log
// capture, and Node / NodeRequest builders.
import { spawnSync } from 'node:child_process';
import { after, before, describe } from 'node:test';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import mysql from 'mysql2/promise';
import type { Node, NodeRequest, NodeState, RequestState } from '../src/model/types.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const script = join(repo, 'scripts/mariadb.sh');

export function mariadbAvailable(): boolean {
  return ['/usr/sbin/mariadbd', '/usr/sbin/mysqld', '/usr/bin/mariadbd'].some((p) => existsSync(p));
}

/** A private MariaDB in its own directory (stop/restart/SIGSTOP are allowed on it). */
export class PrivateMariaDb {
  readonly dir: string;
  uri = '';

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'np-mdb-'));
  }

  start(): string {
    const r = spawnSync('bash', [script, 'start', this.dir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mariadb.sh start failed: ${r.stderr}`);
    this.uri = r.stdout.trim();
    return this.uri;
  }

  stop(): void {
    spawnSync('bash', [script, 'stop', this.dir], { encoding: 'utf8' });
  }

  pid(): number {
    const r = spawnSync('cat', [join(this.dir, 'mariadb.pid')], { encoding: 'utf8' });
    return Number(r.stdout.trim());
  }

  /** Freeze the server: connections stay open but nothing answers (a hung database). */
  freeze(): void { process.kill(this.pid(), 'SIGSTOP'); }

  thaw(): void { process.kill(this.pid(), 'SIGCONT'); }

  destroy(): void {
    this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The MariaDB the suite shares: NODEPOOL_TEST_MYSQL, or one started now (stop it in after()). */
export async function sharedMariaDb(): Promise<{ uri: string; close(): void }> {
  const env = process.env.NODEPOOL_TEST_MYSQL;
  if (env) return { uri: env, close: () => undefined };
  const db = new PrivateMariaDb();
  return { uri: db.start(), close: () => db.destroy() };
}

/** A new empty database `nodepool_<random>` on the server of `baseUri`; drop() removes it. */
export async function freshMysqlDatabase(baseUri: string): Promise<{ uri: string; name: string; drop(): Promise<void> }> {
  const url = new URL(baseUri);
  const name = `nodepool_t${randomBytes(5).toString('hex')}`;
  const conn = await mysql.createConnection({
    host: url.hostname, port: Number(url.port || 3306), user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
  });
  try {
    await conn.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  } finally {
    await conn.end();
  }
  const fresh = new URL(baseUri);
  fresh.pathname = `/${name}`;
  return {
    uri: fresh.toString(),
    name,
    async drop() {
      const c = await mysql.createConnection({
        host: url.hostname, port: Number(url.port || 3306), user: decodeURIComponent(url.username),
        password: decodeURIComponent(url.password),
      });
      try { await c.query(`DROP DATABASE IF EXISTS \`${name}\``); } finally { await c.end(); }
    },
  };
}

/** A database for one test: SQLite (uri null, a file in stateDir) or a fresh MariaDB database. */
export interface FreshDb { uri: string | null; stateDir: string; cleanup(): Promise<void> }

/**
 * Runs `suite` on SQLite and on MariaDB (skipped when neither the server nor NODEPOOL_TEST_MYSQL
 * is there); each `fresh()` gives an empty database. `mariadbOnly` adds tests that need the
 * server itself, inside the MariaDB suite.
 */
export function onEachDatabase(suite: (name: 'sqlite' | 'mariadb', fresh: () => Promise<FreshDb>) => void,
  mariadbOnly?: (serverUri: () => string) => void): void {
  suite('sqlite', async () => {
    const d = tempDir();
    return { uri: null, stateDir: d.dir, cleanup: async () => d.remove() };
  });
  describe('mariadb', { skip: !mariadbAvailable() && !process.env.NODEPOOL_TEST_MYSQL }, () => {
    let server: { uri: string; close(): void } | null = null;
    before(async () => { server = await sharedMariaDb(); });
    after(() => server?.close());
    const serverUri = (): string => {
      if (server === null) throw new Error('MariaDB not started');
      return server.uri;
    };
    suite('mariadb', async () => {
      const db = await freshMysqlDatabase(serverUri());
      const d = tempDir();
      return { uri: db.uri, stateDir: d.dir, cleanup: async () => { await db.drop(); d.remove(); } };
    });
    mariadbOnly?.(serverUri);
  });
}

export function tempDir(prefix = 'np-db-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

/** A pino logger whose lines are kept in memory for assertions. */
export function captureLog(): { log: Logger; lines: LogLine[]; text(): string } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) {
        if (l.trim() !== '') lines.push(JSON.parse(l) as LogLine);
      }
      cb();
    },
  });
  const log = pino({ level: 'debug', formatters: { level: (label) => ({ level: label }) } }, stream);
  return { log, lines, text: () => lines.map((l) => JSON.stringify(l)).join('\n') };
}

export function makeNode(id: string, state: NodeState, over: Partial<Node> = {}): Node {
  const t = Date.now() / 1000;
  return {
    id, state, state_time: t, created_time: t, cloud: 'fake', provider: 'fake-provider', pool: 'main',
    type: ['ubuntu-bionic'], allocated_to: null, az: 'az1', region: null, public_ipv4: '203.0.113.5',
    private_ipv4: '10.0.0.5', public_ipv6: null, interface_ip: '203.0.113.5', host_id: null,
    connection_port: 22, connection_type: 'ssh', username: 'zuul', host_keys: [], image_id: null,
    launcher: 'nl01-1-PoolWorker.fake-provider-main', external_id: `srv-${id}`, hostname: `ubuntu-bionic-fake-${id}`,
    comment: null, hold_job: null, hold_expiration: null, resources: null, attributes: null, extra: {},
    ...over,
  };
}

export function makeRequest(id: string, state: RequestState, over: Partial<NodeRequest> = {}): NodeRequest {
  return {
    id, state, state_time: Date.now() / 1000, declined_by: [], node_types: ['ubuntu-bionic'], nodes: [],
    reuse: true, requestor: 'zuul01.example.org', provider: null, relative_priority: 0, extra: {}, ...over,
  };
}

/** Copy of a node with a new state (and state_time), as the launcher would store it. */
export function withState<T extends { state: string; state_time: number }>(o: T, state: T['state'], extra: Partial<T> = {}): T {
  return { ...o, state, state_time: Date.now() / 1000, ...extra };
}
