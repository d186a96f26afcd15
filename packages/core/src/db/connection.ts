// Opening a database: knex over mysql2 (production) or better-sqlite3 (embedded default), with
// a deliberately small pool, and the schema brought up to date before anything else runs.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import knexPkg from 'knex';
import mysql2 from 'mysql2';
import type { Knex } from 'knex';
import { getLogger } from '../log/index.js';
import { DatabaseError, SchemaTooNewError } from './errors.js';
import { CODE_SCHEMA_VERSION, MIGRATIONS, migrationVersion, type Migration } from './schema.js';
import {
  accountOf, describeTarget, parseDatabaseUri, redact, type DatabaseTarget, type MysqlTarget,
} from './uri.js';

const createKnex = knexPkg.knex;

export const MIGRATIONS_TABLE = 'nodepool_migrations';
export const MIGRATIONS_LOCK_TABLE = `${MIGRATIONS_TABLE}_lock`;

/** The raw mysql2 connection, as far as we touch it (to cut a hung socket). */
interface RawMysqlConnection {
  stream?: { destroy(err?: Error): void };
  on(event: 'end' | 'error', fn: () => void): void;
}

/** The raw better-sqlite3 connection, as far as we touch it. */
interface RawSqliteConnection {
  pragma(source: string): unknown;
}

export interface KnexOptions {
  /** upper bound of the pool; see poolMax() for the defaults and why they are small */
  poolMax?: number;
  /** milliseconds to wait for a free pooled connection */
  acquireTimeoutMs?: number;
}

/**
 * Nodepool 2 held a database connection per node being launched or deleted, and its install doc
 * told operators to allow twice the number of nodes in connections. We never do: the recorder
 * writes through ONE connection in batches, and the remaining few serve the CLI, the web API and
 * the retention job. So a launcher costs the server at most 4 connections however many nodes it
 * runs. SQLite allows one writer at a time anyway; a single connection avoids SQLITE_BUSY inside
 * our own process.
 */
function poolMax(target: DatabaseTarget, requested: number | undefined): number {
  if (target.engine === 'sqlite') return 1;
  return Math.max(1, Math.min(requested ?? 4, 16));
}

/** A knex instance for a target, plus a way to cut every raw connection (hung server). */
export interface KnexHandle {
  knex: Knex;
  /** Destroy the sockets of every open MySQL connection, failing whatever they were waiting for. */
  cutConnections(reason: string): void;
}

/** mysql2's own formatting (its default), skipped for a query without values. */
function formatQuery(this: { config: { timezone?: string } }, sql: string, values: unknown): string {
  if (values === undefined || values === null || (Array.isArray(values) && values.length === 0)) return sql;
  return mysql2.format(sql, values as Parameters<typeof mysql2.format>[1], false, this.config.timezone);
}

export function makeKnex(target: DatabaseTarget, opts: KnexOptions = {}): KnexHandle {
  const log = getLogger('nodepool.Database');
  const knexLog = {
    // knex prints migration-lock chatter and deprecation notes through console by default
    warn: (m: unknown) => log.debug({ knex: String(m) }, 'knex warning'),
    error: (m: unknown) => log.debug({ knex: String(m) }, 'knex error'),
    debug: (m: unknown) => log.trace({ knex: String(m) }, 'knex debug'),
    deprecate: (m: unknown) => log.debug({ knex: String(m) }, 'knex deprecation'),
  };
  const acquireConnectionTimeout = opts.acquireTimeoutMs ?? 15_000;
  if (target.engine === 'sqlite') {
    if (target.filename !== ':memory:') {
      // a directory that cannot be created surfaces as the open error of the first query
      try { mkdirSync(dirname(target.filename), { recursive: true }); } catch { /* see above */ }
    }
    const knex = createKnex({
      client: 'better-sqlite3',
      connection: { filename: target.filename },
      compileSqlOnError: false,
      useNullAsDefault: true,
      acquireConnectionTimeout,
      log: knexLog,
      pool: {
        min: 1,
        max: poolMax(target, opts.poolMax),
        afterCreate(conn: RawSqliteConnection, done: (err: Error | null, conn: RawSqliteConnection) => void) {
          try {
            // WAL: the CLI reads while the launcher writes; busy_timeout is short because
            // better-sqlite3 waits synchronously, blocking the event loop meanwhile.
            if (target.filename !== ':memory:') conn.pragma('journal_mode = WAL');
            conn.pragma('synchronous = NORMAL');
            conn.pragma('busy_timeout = 2000');
            done(null, conn);
          } catch (err) {
            done(err instanceof Error ? err : new Error(String(err)), conn);
          }
        },
      },
    });
    return { knex, cutConnections: () => undefined };
  }
  const raw = new Set<RawMysqlConnection>();
  const connection: Record<string, unknown> = {
    user: target.user,
    database: target.database,
    connectTimeout: target.connectTimeoutMs,
    charset: 'utf8mb4',
    enableKeepAlive: true,
    keepAliveInitialDelay: 10_000,
    // mysql2 formats every query, even one without values: a scan of the whole text for
    // placeholders, which for the recorder's batch statements (hundreds of kilobytes, values
    // already escaped) was a quarter of what recording cost the launcher
    queryFormat: formatQuery,
  };
  if (target.password !== null) connection.password = target.password;
  if (target.socketPath !== null) connection.socketPath = target.socketPath;
  else { connection.host = target.host; connection.port = target.port; }
  const knex = createKnex({
    client: 'mysql2',
    connection,
    compileSqlOnError: false,
    acquireConnectionTimeout,
    log: knexLog,
    pool: {
      min: 0,
      max: poolMax(target, opts.poolMax),
      idleTimeoutMillis: 60_000,
      afterCreate(conn: RawMysqlConnection, done: (err: Error | null, conn: RawMysqlConnection) => void) {
        raw.add(conn);
        conn.on('end', () => raw.delete(conn));
        conn.on('error', () => raw.delete(conn));
        done(null, conn);
      },
    },
  });
  return {
    knex,
    cutConnections(reason: string) {
      // mysql2's own destroy() only half-closes the socket and leaves queued queries waiting
      // forever on a server that stopped answering; destroying the stream fails them at once.
      for (const conn of raw) conn.stream?.destroy(new Error(reason));
      raw.clear();
    },
  };
}

/**
 * Close a pool: each connection says goodbye to the server (a cut socket is an "Aborted
 * connection" warning in MariaDB's log); the sockets of those still open after `graceMs` (a
 * query hung on a server that stopped answering) are cut.
 */
export async function closeKnex(handle: KnexHandle, reason: string, graceMs = 2_000): Promise<void> {
  const timer = setTimeout(() => handle.cutConnections(reason), graceMs);
  try {
    await handle.knex.destroy();
  } catch {
    // closing anyway
  } finally {
    clearTimeout(timer);
  }
}

function errCode(err: unknown): string | null {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return null;
}

const SQL_START = /^\s*(select|insert|update|delete|begin|commit|rollback|create|alter|drop|pragma|show|set|with|savepoint|release)\b/i;

/**
 * The driver's own words. knex prefixes the failed statement (with its bound values) to the
 * message; for a batch insert that is kilobytes of rows, so it is cut off for logs.
 */
function errMessage(err: unknown): string {
  let text = err instanceof Error ? err.message : String(err);
  if (SQL_START.test(text)) {
    const i = text.lastIndexOf(' - ');
    if (i >= 0) text = text.slice(i + 3);
  }
  return text.length > 500 ? `${text.slice(0, 499)}…` : text;
}

const CONNECT_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN',
  'EPIPE', 'ENOENT', 'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN', 'ER_NET_READ_INTERRUPTED', 'ECONNABORTED',
]);

/**
 * Turn a driver error into a DatabaseError whose message says what to do, names the database
 * (user@host, never the password) and keeps the driver's own words.
 */
export function classifyError(err: unknown, target: DatabaseTarget): DatabaseError {
  if (err instanceof DatabaseError) return err;
  const desc = describeTarget(target);
  const code = errCode(err);
  const text = redact(errMessage(err), target);
  if (target.engine === 'mysql') {
    const account = accountOf(target as MysqlTarget);
    if (code === 'ER_ACCESS_DENIED_ERROR' || code === 'ER_DBACCESS_DENIED_ERROR' || code === 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR') {
      return new DatabaseError('auth',
        `database ${desc}: access denied for ${account}; check the user and password in the database URI (${text})`,
        { database: desc, cause: err });
    }
    if (code === 'ER_BAD_DB_ERROR') {
      return new DatabaseError('auth',
        `database ${desc}: database "${(target as MysqlTarget).database}" does not exist; create it and grant ${account} ` +
        `all privileges on it (nodepool-ts creates the tables itself) (${text})`,
        { database: desc, cause: err });
    }
    if ((code !== null && CONNECT_CODES.has(code)) || (err instanceof Error && err.name === 'KnexTimeoutError')
      || /connect|Connection lost|closed state|write timeout/i.test(text)) {
      return new DatabaseError('connect', `database ${desc} is unreachable as ${account}: ${text}`, { database: desc, cause: err });
    }
    return new DatabaseError('query', `database ${desc}: ${text}`, { database: desc, cause: err });
  }
  if (code === 'SQLITE_CANTOPEN' || code === 'SQLITE_IOERR' || code === 'SQLITE_FULL' || code === 'SQLITE_READONLY') {
    return new DatabaseError('connect', `database ${desc} cannot be written: ${text}`, { database: desc, cause: err });
  }
  return new DatabaseError('query', `database ${desc}: ${text}`, { database: desc, cause: err });
}

const DATA_CODES = new Set([
  'ER_DATA_TOO_LONG', 'ER_BAD_NULL_ERROR', 'ER_WARN_DATA_OUT_OF_RANGE', 'ER_TRUNCATED_WRONG_VALUE',
  'ER_TRUNCATED_WRONG_VALUE_FOR_FIELD', 'WARN_DATA_TRUNCATED', 'ER_INVALID_CHARACTER_STRING', 'ER_NO_DEFAULT_FOR_FIELD',
  'ER_WRONG_VALUE_COUNT_ON_ROW', 'ER_CANT_CREATE_GEOMETRY_OBJECT', 'SQLITE_MISMATCH', 'SQLITE_TOOBIG', 'SQLITE_RANGE',
]);

/**
 * The database answered and refused the VALUES (too long, wrong type, constraint): retrying the
 * same rows can never succeed, as opposed to an outage where it will.
 */
export function isDataError(err: unknown): boolean {
  const code = errCode(err);
  if (code !== null && (DATA_CODES.has(code) || code.startsWith('SQLITE_CONSTRAINT'))) return true;
  // better-sqlite3 rejects unbindable values (NaN objects, ...) with a TypeError before SQLite runs
  return err instanceof TypeError;
}

/** Whether another attempt may succeed (server down, lock held) as opposed to a config problem. */
export function isTransient(err: DatabaseError): boolean {
  return err.kind === 'connect' || err.kind === 'query' || err.kind === 'migration-locked';
}

class CompiledMigrationSource implements Knex.MigrationSource<Migration> {
  constructor(private readonly migrations: readonly Migration[]) {}
  getMigrations(): Promise<Migration[]> { return Promise.resolve([...this.migrations]); }
  getMigrationName(m: Migration): string { return m.name; }
  getMigration(m: Migration): Promise<Knex.Migration> {
    return Promise.resolve({
      up: (k: Knex) => m.up(k),
      // knex insists on a down; we never call it (a newer schema is refused instead)
      down: () => Promise.reject(new DatabaseError('migration', `nodepool-ts never migrates down (${m.name})`)),
    });
  }
}

export interface MigrationResult {
  /** schema version before (0 = empty database) */
  from: number;
  /** schema version now */
  to: number;
  applied: string[];
}

export interface MigrateOptions {
  /** how long to wait for another process's migration lock before failing (ms) */
  lockWaitMs?: number;
  /** the migrations to apply (tests use longer lists to simulate a newer nodepool-ts) */
  migrations?: readonly Migration[];
}

async function tableExistsRace(knex: Knex, name: string, build: (t: Knex.CreateTableBuilder) => void): Promise<void> {
  if (await knex.schema.hasTable(name)) return;
  try {
    await knex.schema.createTable(name, build);
  } catch (err) {
    // two daemons starting together both saw the table missing; the loser's CREATE fails
    if (!(await knex.schema.hasTable(name))) throw err;
  }
}

/**
 * knex creates its bookkeeping tables with check-then-create and inserts the lock row with
 * check-then-insert; two migrators starting together can then end up with TWO lock rows, and
 * knex's lock (which requires exactly one updated row) is never obtainable again. So we create
 * both tables ourselves, tolerating the race, and insert the lock row with a fixed key.
 */
async function ensureMigrationTables(knex: Knex): Promise<void> {
  await tableExistsRace(knex, MIGRATIONS_TABLE, (t) => {
    t.increments();
    t.string('name');
    t.integer('batch');
    t.timestamp('migration_time');
  });
  await tableExistsRace(knex, MIGRATIONS_LOCK_TABLE, (t) => {
    t.increments('index').primary();
    t.integer('is_locked');
  });
  await knex(MIGRATIONS_LOCK_TABLE).insert({ index: 1, is_locked: 0 }).onConflict('index').ignore();
}

async function appliedMigrations(knex: Knex): Promise<string[]> {
  const rows: { name: string | null }[] = await knex(MIGRATIONS_TABLE).select('name').orderBy('id');
  return rows.map((r) => r.name ?? '');
}

function checkNotNewer(applied: string[], known: readonly Migration[], desc: string): void {
  const names = new Set(known.map((m) => m.name));
  const unknown = applied.filter((n) => !names.has(n));
  if (unknown.length === 0) return;
  const codeVersion = Math.max(0, ...known.map((m) => migrationVersion(m.name)));
  const versions = applied.map(migrationVersion).filter((v) => Number.isFinite(v));
  const dbVersion = Math.max(0, ...versions);
  throw new SchemaTooNewError(desc, dbVersion, codeVersion, unknown);
}

function isLockContention(err: unknown): boolean {
  const code = errCode(err);
  if (err instanceof Error && err.name === 'MigrationLocked') return true;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' || code === 'ER_LOCK_DEADLOCK'
    || code === 'ER_LOCK_WAIT_TIMEOUT' || code === 'ER_TABLE_EXISTS_ERROR'
    || /already locked|already exists/i.test(errMessage(err));
}

/**
 * Bring the schema up to date. Safe when several daemons start at once: knex's lock table
 * serialises them and the losers wait, then find nothing left to do. A schema newer than this
 * code (migration names we do not know) is refused; nothing is ever migrated down.
 */
export async function migrateToLatest(knex: Knex, target: DatabaseTarget, opts: MigrateOptions = {}): Promise<MigrationResult> {
  const migrations = opts.migrations ?? MIGRATIONS;
  const desc = describeTarget(target);
  const deadline = Date.now() + (opts.lockWaitMs ?? 60_000);
  const versionOf = (names: string[]) => Math.max(0, ...names.map(migrationVersion).filter((v) => Number.isFinite(v)));
  let delay = 50;
  for (;;) {
    try {
      await ensureMigrationTables(knex);
      const before = await appliedMigrations(knex);
      checkNotNewer(before, migrations, desc);
      const source = new CompiledMigrationSource(migrations);
      const [, log] = await knex.migrate.latest({ migrationSource: source, tableName: MIGRATIONS_TABLE }) as [number, string[]];
      const after = await appliedMigrations(knex);
      return { from: versionOf(before), to: versionOf(after), applied: log };
    } catch (err) {
      if (err instanceof DatabaseError) throw err;
      // a newer daemon may have migrated between our check and knex's own validation
      if (/migration directory is corrupt/i.test(errMessage(err))) {
        checkNotNewer(await appliedMigrations(knex), migrations, desc);
      }
      if (!isLockContention(err)) {
        const e = classifyError(err, target);
        if (e.kind === 'query') {
          throw new DatabaseError('migration', `database ${desc}: schema migration failed: ${redact(errMessage(err), target)}`,
            { database: desc, cause: err });
        }
        throw e;
      }
      if (Date.now() > deadline) {
        throw new DatabaseError('migration-locked',
          `database ${desc}: the schema migration lock (${MIGRATIONS_LOCK_TABLE}) is still held after ` +
          `${Math.round((opts.lockWaitMs ?? 60_000) / 1000)} s; if no other nodepool-ts is migrating (a crashed one ` +
          `leaves it set), clear it with: UPDATE ${MIGRATIONS_LOCK_TABLE} SET is_locked = 0`,
          { database: desc, cause: err });
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 1000);
    }
  }
}

/** The applied schema version, or 0 for an empty database. */
export async function schemaVersion(knex: Knex): Promise<number> {
  if (!(await knex.schema.hasTable(MIGRATIONS_TABLE))) return 0;
  return Math.max(0, ...(await appliedMigrations(knex)).map(migrationVersion).filter((v) => Number.isFinite(v)));
}

export { CODE_SCHEMA_VERSION };

/** An open database: what the CLI, the web API and the queries use. */
export class Database {
  readonly target: DatabaseTarget;
  readonly knex: Knex;
  private readonly handle: KnexHandle;
  private closed = false;

  constructor(target: DatabaseTarget, handle: KnexHandle) {
    this.target = target;
    this.handle = handle;
    this.knex = handle.knex;
  }

  get engine(): DatabaseTarget['engine'] { return this.target.engine; }

  /** The database without its password, for messages. */
  describe(): string { return describeTarget(this.target); }

  /** Fail whatever the connections are waiting for (server hung) so that a new attempt reconnects. */
  cutConnections(reason: string): void { this.handle.cutConnections(reason); }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await closeKnex(this.handle, 'database closed');
  }
}

export interface OpenOptions extends KnexOptions, MigrateOptions {
  /** bring the schema up to date (default true); false only checks it is not newer */
  migrate?: boolean;
}

/**
 * Open a database URI (null = `<stateDir>/nodepool.db`), check it answers, and migrate the
 * schema. Rejects with a DatabaseError naming the database without its password.
 */
export async function openDatabase(uri: string | null, stateDir: string, opts: OpenOptions = {}): Promise<Database> {
  const target = parseDatabaseUri(uri, stateDir);
  return openTarget(target, opts);
}

export async function openTarget(target: DatabaseTarget, opts: OpenOptions = {}): Promise<Database> {
  let handle: KnexHandle;
  try {
    handle = makeKnex(target, opts);
  } catch (err) {
    throw classifyError(err, target);
  }
  const db = new Database(target, handle);
  try {
    await db.knex.raw('select 1');
    if (opts.migrate ?? true) {
      await migrateToLatest(db.knex, target, opts);
    } else if (await db.knex.schema.hasTable(MIGRATIONS_TABLE)) {
      checkNotNewer(await appliedMigrations(db.knex), opts.migrations ?? MIGRATIONS, db.describe());
    }
    return db;
  } catch (err) {
    await db.close().catch(() => undefined);
    throw classifyError(err, target);
  }
}
