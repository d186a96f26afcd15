// Database URIs as operators write them in nodepool.yaml / the secure file. Nodepool's old
// secure.conf used SQLAlchemy URIs (`mysql+pymysql://user:pass@host/db`), so the driver suffix
// after `+` is accepted and ignored. No URI means the embedded SQLite file in the state dir.
import { isAbsolute, join, resolve } from 'node:path';
import { DatabaseError } from './errors.js';

export interface MysqlTarget {
  engine: 'mysql';
  /** null when connecting through a unix socket */
  host: string | null;
  port: number;
  socketPath: string | null;
  user: string;
  password: string | null;
  database: string;
  /** milliseconds to wait for the server's greeting */
  connectTimeoutMs: number;
}

export interface SqliteTarget {
  engine: 'sqlite';
  /** absolute path, or `:memory:` */
  filename: string;
}

export type DatabaseTarget = MysqlTarget | SqliteTarget;

export const DEFAULT_SQLITE_FILE = 'nodepool.db';
const DEFAULT_MYSQL_PORT = 3306;
const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
const MYSQL_SCHEME = /^(mysql|mariadb)(\+[a-z0-9_]+)?$/;
const SQLITE_SCHEME = /^sqlite(\+[a-z0-9_]+)?$/;

function uriError(message: string): DatabaseError {
  return new DatabaseError('uri', message);
}

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw uriError(`database URI: bad percent-encoding in the ${what}`);
  }
}

/**
 * Parse a database URI. `null` (no `database`/`dburi` configured) selects `<stateDir>/nodepool.db`.
 * Errors never quote the URI itself: it may contain the password.
 */
export function parseDatabaseUri(uri: string | null, stateDir: string): DatabaseTarget {
  if (uri === null || uri.trim() === '') {
    return { engine: 'sqlite', filename: resolve(stateDir, DEFAULT_SQLITE_FILE) };
  }
  const text = uri.trim();
  const colon = text.indexOf(':');
  const scheme = colon > 0 ? text.slice(0, colon).toLowerCase() : '';
  if (SQLITE_SCHEME.test(scheme)) return parseSqlite(text.slice(colon + 1), stateDir);
  if (MYSQL_SCHEME.test(scheme)) return parseMysql(text);
  if (scheme === '') throw uriError('database URI has no scheme; expected mysql://... or sqlite:///path');
  throw uriError(`database URI scheme "${scheme}" is not supported; use mysql://user:password@host:port/db, ` +
    'mysql://user@localhost/db?socket=/path, or sqlite:///absolute/path.db');
}

function parseSqlite(rest: string, stateDir: string): SqliteTarget {
  if (rest === ':memory:' || rest === '//' || rest === '//:memory:' || rest === '///:memory:') {
    return { engine: 'sqlite', filename: ':memory:' };
  }
  if (!rest.startsWith('//')) throw uriError('sqlite database URI must look like sqlite:///absolute/path.db');
  let path = rest.slice(2);
  if (path.includes('?')) throw uriError('sqlite database URI takes no options');
  path = decode(path, 'path');
  if (path.startsWith('/')) {
    // `sqlite:///abs/path` and SQLAlchemy's `sqlite:////abs/path` both mean /abs/path
    path = '/' + path.replace(/^\/+/, '');
    return { engine: 'sqlite', filename: path };
  }
  if (path === '') throw uriError('sqlite database URI names no file');
  // `sqlite://relative.db`: relative to the state dir, never to the process's cwd
  return { engine: 'sqlite', filename: isAbsolute(path) ? path : join(resolve(stateDir), path) };
}

function parseMysql(text: string): MysqlTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw uriError('database URI is not a valid URL; expected mysql://user:password@host:port/database ' +
      '(percent-encode special characters in the password)');
  }
  const user = decode(url.username, 'user name');
  const password = url.password === '' ? null : decode(url.password, 'password');
  if (user === '') throw uriError('mysql database URI names no user (mysql://user:password@host/database)');
  const database = decode(url.pathname.replace(/^\/+/, ''), 'database name');
  if (database === '' || database.includes('/')) {
    throw uriError(`mysql database URI must name one database after the host (mysql://${user}@host/database)`);
  }
  let socketPath: string | null = null;
  let connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS;
  for (const [key, value] of url.searchParams) {
    switch (key) {
      case 'socket':
      case 'unix_socket':
        if (!value.startsWith('/')) throw uriError(`database URI option ${key} must be an absolute path`);
        socketPath = value;
        break;
      case 'charset':
        // we always talk utf8mb4; utf8 (MySQL's 3-byte subset) is accepted from legacy configs
        if (!/^utf8(mb4)?$/i.test(value)) throw uriError(`database URI charset ${value} is not supported (utf8mb4 is used)`);
        break;
      case 'connect_timeout': {
        const s = Number(value);
        if (!Number.isFinite(s) || s <= 0) throw uriError('database URI option connect_timeout must be a number of seconds');
        connectTimeoutMs = Math.round(s * 1000);
        break;
      }
      default:
        throw uriError(`database URI option "${key}" is not supported (supported: socket, unix_socket, charset, connect_timeout)`);
    }
  }
  let host: string | null = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (socketPath !== null) host = null;
  else if (host === '') host = 'localhost';
  let port = DEFAULT_MYSQL_PORT;
  if (url.port !== '') {
    port = Number(url.port);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw uriError('database URI port is not valid');
  }
  return { engine: 'mysql', host, port, socketPath, user, password, database, connectTimeoutMs };
}

/** The database as a log line may name it: user, host, port, database — never the password. */
export function describeTarget(target: DatabaseTarget): string {
  if (target.engine === 'sqlite') return `sqlite://${target.filename === ':memory:' ? ':memory:' : target.filename}`;
  if (target.socketPath !== null) return `mysql://${target.user}@localhost/${target.database} (socket ${target.socketPath})`;
  const host = target.host !== null && target.host.includes(':') ? `[${target.host}]` : target.host;
  return `mysql://${target.user}@${host}:${target.port}/${target.database}`;
}

/** `user@host` as MySQL names accounts, for messages about authentication. */
export function accountOf(target: MysqlTarget): string {
  return `${target.user}@${target.socketPath !== null ? 'localhost' : target.host}`;
}

/**
 * Remove the password from any text (driver error messages) before it is logged. Drivers do not
 * normally echo it, but a URI pasted into an error by some layer must not leak.
 */
export function redact(text: string, target: DatabaseTarget): string {
  if (target.engine !== 'mysql' || target.password === null || target.password.length < 3) return text;
  let out = text.split(target.password).join('***');
  const encoded = encodeURIComponent(target.password);
  if (encoded !== target.password) out = out.split(encoded).join('***');
  return out;
}
