// One logical ZooKeeper session over node-zookeeper-client, with kazoo's view of its health:
// connected / suspended (connection dropped, session may survive) / lost (session expired or
// closed). When a session is lost we build a NEW raw client: the library cannot recover an expired
// one. Owners listen for 'lost' then 'connected' to re-create their ephemeral znodes; locks held in
// the old session are marked lost, never assumed.
import { EventEmitter } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import zookeeper from 'node-zookeeper-client';
import type { Client, Event as RawEvent, Exception as RawException, Stat } from 'node-zookeeper-client';
import type { ZooKeeperServer, ZooKeeperTls } from '../config/types.js';
import { getLogger, type Logger } from '../log/index.js';
import { ZkConnectError, ZkError, isNoNode, isNodeExists, withoutStack, type ZkErrorCode } from './errors.js';
import { paths } from './paths.js';
import { connectOverTls, describeConnectError, secureContext } from './tls.js';
import { applyWirePatches } from './wire-patches.js';

/**
 * Nodepool creates nodes, builds and uploads as `<parent>/` + SEQUENTIAL so the id is the bare
 * sequence. ZooKeeper allows that trailing '/' for sequential creates; node-zookeeper-client's
 * client-side check does not. Relax only that rule (the server still validates every path).
 */
function allowSequentialTrailingSlash(): void {
  const req = createRequire(import.meta.url);
  const pathMod = req('node-zookeeper-client/lib/Path.js') as { validate(p: string): void; __nodepoolPatched?: boolean };
  if (pathMod.__nodepoolPatched) return;
  const original = pathMod.validate.bind(pathMod);
  pathMod.validate = (p: string) => {
    original(typeof p === 'string' && p.length > 1 && p.endsWith('/') && !p.endsWith('//') ? p.slice(0, -1) : p);
  };
  pathMod.__nodepoolPatched = true;
}
allowSequentialTrailingSlash();
applyWirePatches();

export type SessionState = 'connected' | 'suspended' | 'lost';
export type { ZooKeeperServer } from '../config/types.js';
export type { Stat, RawEvent };

export interface ZooKeeperOptions {
  /** Config servers, or a kazoo-style host string `h1:2181,h2:2181/chroot`. */
  servers: ZooKeeperServer[] | string;
  /** Requested session timeout (kazoo's default is 10 s). */
  sessionTimeoutMs?: number;
  /** Give up the INITIAL connect after this long (CLI); without it we retry forever (daemons). */
  connectTimeoutMs?: number;
  /** Connect over TLS with these PEM files (`zookeeper-tls`); the constructor throws ZkTlsError if one is unusable. */
  tls?: ZooKeeperTls | null;
  log?: Logger;
}

/** Something that is only valid inside one session (a held lock). */
export interface SessionBound {
  sessionLost(): void;
}

export type CreateMode = 'persistent' | 'persistent_sequential' | 'ephemeral' | 'ephemeral_sequential';

/** One operation of a multi (see ZkSession.multi). */
export type MultiOp =
  | { op: 'create'; path: string; data?: Buffer; mode?: CreateMode }
  | { op: 'delete'; path: string; version?: number }
  | { op: 'set'; path: string; data: Buffer; version?: number }
  | { op: 'check'; path: string; version: number };

/** What one op of a successful multi returned. */
export interface MultiResult {
  /** a create's path (with the sequence suffix) */
  path: string | null;
  /** a set's new Stat */
  stat: Stat | null;
}

const MODES: Record<CreateMode, number> = {
  persistent: zookeeper.CreateMode.PERSISTENT,
  persistent_sequential: zookeeper.CreateMode.PERSISTENT_SEQUENTIAL,
  ephemeral: zookeeper.CreateMode.EPHEMERAL,
  ephemeral_sequential: zookeeper.CreateMode.EPHEMERAL_SEQUENTIAL,
};

export type WatchEventType = 'created' | 'deleted' | 'changed' | 'children';

/** Translate a raw watch event; watchers are raw functions so the library can de-duplicate them. */
export function watchEventType(ev: RawEvent): WatchEventType {
  switch (ev.getType()) {
    case zookeeper.Event.NODE_CREATED: return 'created';
    case zookeeper.Event.NODE_DELETED: return 'deleted';
    case zookeeper.Event.NODE_DATA_CHANGED: return 'changed';
    default: return 'children';
  }
}

const EMPTY = Buffer.alloc(0);
const RETRY_LOG_INTERVAL_MS = 10_000;
const CLOSE_WAIT_MS = 2_000;

interface Connection {
  hosts: string[];
  chroot: string | null;
  /** What we tell node-zookeeper-client. */
  connectString: string;
  /** What we tell a human: `host:port,host:port`. */
  display: string;
}

function normChroot(c: string | null | undefined): string | null {
  if (!c) return null;
  let s = c.startsWith('/') ? c : `/${c}`;
  while (s.length > 1 && s.endsWith('/')) s = s.slice(0, -1);
  return s === '/' ? null : s;
}

/**
 * Servers plus ONE chroot, the first server's (§1.1: kazoo would treat everything after the first
 * '/' as chroot; with one server this is identical, with several it is what was meant).
 */
export function buildConnection(servers: ZooKeeperServer[] | string): Connection {
  let hosts: string[] = [];
  let chroot: string | null = null;
  if (typeof servers === 'string') {
    for (const part of servers.split(',')) {
      const p = part.trim();
      if (p === '') continue;
      const slash = p.indexOf('/');
      const hp = slash >= 0 ? p.slice(0, slash) : p;
      if (slash >= 0 && chroot === null) chroot = normChroot(p.slice(slash));
      hosts.push(hp.includes(':') ? hp : `${hp}:2181`);
    }
  } else {
    hosts = servers.map((s) => `${s.host}:${s.port}`);
    chroot = normChroot(servers[0]?.chroot);
  }
  if (hosts.length === 0) throw new ZkError('EZK', 'no ZooKeeper servers configured');
  const display = hosts.join(',');
  return { hosts, chroot, display, connectString: display + (chroot ?? '') };
}

function rawCode(err: unknown): number | null {
  if (err !== null && typeof err === 'object' && 'getCode' in err && typeof (err as RawException).getCode === 'function') {
    return (err as RawException).getCode();
  }
  return null;
}

const CODES = new Map<number, ZkErrorCode>([
  [zookeeper.Exception.NO_NODE, 'ENONODE'],
  [zookeeper.Exception.NODE_EXISTS, 'ENODEEXISTS'],
  [zookeeper.Exception.NOT_EMPTY, 'ENOTEMPTY'],
  [zookeeper.Exception.BAD_VERSION, 'EBADVERSION'],
  [zookeeper.Exception.CONNECTION_LOSS, 'ECONNLOSS'],
  [zookeeper.Exception.SESSION_EXPIRED, 'ESESSIONEXPIRED'],
]);

/**
 * The library's error as ours. Made in a reply's callback, where a stack would only show the
 * socket reader, so none is captured: NoNode and NodeExists are ordinary answers here (a node
 * already deleted, a lock already taken), frequent enough that their stack traces were a
 * visible part of the launcher's CPU.
 */
function toZkError(err: unknown, op: string, path: string): ZkError {
  if (err instanceof ZkError) return err;
  const code = rawCode(err);
  const name = err instanceof Error ? err.message : String(err);
  return withoutStack(() => (code === null
    ? new ZkError('EBADPATH', `${op} ${path}: ${name}`, { op, path })
    : new ZkError(CODES.get(code) ?? 'EZK', `${op} ${path}: ${name}`, { op, path, zkCode: code })));
}

/** Remove our listeners only: the library's own 'state' listener drives its events. */
function detach(raw: Client): void {
  for (const ev of ['connected', 'disconnected', 'expired']) raw.removeAllListeners(ev);
}

interface RawInternals {
  connectionManager?: { socket?: { destroy(): void }; connectTimeoutHandler?: NodeJS.Timeout | null };
}

/**
 * Close a raw client that is not connected. The library would otherwise keep a socket attempt
 * (and its connect timer) alive until the next attempt fails; destroying the socket ends it now.
 */
function abandon(raw: Client): void {
  try {
    raw.close();
  } catch {
    // no socket yet: nothing to close
  }
  const cm = (raw as unknown as RawInternals).connectionManager;
  if (cm?.connectTimeoutHandler) clearTimeout(cm.connectTimeoutHandler);
  try {
    cm?.socket?.destroy();
  } catch {
    // already gone
  }
}

interface Pending {
  gen: number;
  fail(err: ZkError): void;
}

/** Milliseconds since the epoch from a Stat's 8-byte big-endian time field. */
export function statTimeMs(field: Buffer): number {
  return Number(field.readBigInt64BE(0));
}

/** how long a stopping daemon waits for an unreachable ZooKeeper before closing its session */
export const STOP_ZK_WAIT_MS = 5_000;

export class ZkSession extends EventEmitter {
  readonly connection: Connection;
  protected readonly log: Logger;
  private readonly sessionTimeoutMs: number;
  private readonly connectTimeoutMs: number | undefined;
  private raw: Client;
  private gen = 0;
  private _state: SessionState = 'lost';
  private closed = false;
  private started = false;
  private everConnected = false;
  private readonly pending = new Set<Pending>();
  private readonly bound = new Set<SessionBound>();
  private suspendTimer: NodeJS.Timeout | null = null;
  private retryLogTimer: NodeJS.Timeout | null = null;
  private chrootPromise: Promise<void> | null = null;
  private readonly tls: { files: ZooKeeperTls; context: ReturnType<typeof secureContext> } | null;
  /** why the last connection attempt failed (socket or TLS error), until a session is made */
  private lastError: string | null = null;

  constructor(opts: ZooKeeperOptions) {
    super();
    this.connection = buildConnection(opts.servers);
    this.sessionTimeoutMs = opts.sessionTimeoutMs ?? 10_000;
    this.connectTimeoutMs = opts.connectTimeoutMs;
    this.log = opts.log ?? getLogger('nodepool.zk.ZooKeeper');
    this.tls = opts.tls ? { files: opts.tls, context: secureContext(opts.tls) } : null;
    this.raw = this.newRawClient();
  }

  /** True when this session connects over TLS. */
  get usesTls(): boolean {
    return this.tls !== null;
  }

  get state(): SessionState {
    return this._state;
  }

  /** The current raw client (replaced after a session expiry: do not keep a reference). */
  get client(): Client {
    return this.raw;
  }

  /** Bumped whenever the underlying session changes (expiry, close): ephemerals of an older one are gone. */
  get sessionGeneration(): number {
    return this.gen;
  }

  /** The negotiated (else requested) session timeout. */
  get sessionTimeout(): number {
    return this.raw.getSessionTimeout() || this.sessionTimeoutMs;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * For a daemon that is stopping: once the session has been unconnected for `ms` (now or later),
   * close it, so that what still waits on ZooKeeper (unregistering, handing requests back) fails at
   * once instead of waiting for a server that is gone, and the rest of the stop goes on. Its
   * ephemeral znodes and locks go when the server expires the session (logged). Returns a cancel.
   */
  closeWhenUnreachable(ms = STOP_ZK_WAIT_MS): () => void {
    let timer: NodeJS.Timeout | null = null;
    const arm = (): void => {
      if (timer !== null || this.closed || this._state === 'connected') return;
      timer = setTimeout(() => {
        timer = null;
        if (this.closed || this._state === 'connected') return;
        this.log.warn(`ZooKeeper unreachable for ${ms / 1000} s while stopping; closing the session (its ephemeral znodes and locks go when it expires)`);
        void this.close();
      }, ms);
      timer.unref();
    };
    const onState = (s: SessionState): void => {
      if (s !== 'connected') return arm();
      if (timer !== null) clearTimeout(timer);
      timer = null;
    };
    this.on('state', onState);
    arm();
    return () => {
      this.off('state', onState);
      if (timer !== null) clearTimeout(timer);
      timer = null;
    };
  }

  /** Session id and password, e.g. for a test that forces expiry by stealing the session. */
  sessionCredentials(): { id: Buffer; password: Buffer; timeoutMs: number } {
    return { id: this.raw.getSessionId(), password: this.raw.getSessionPassword(), timeoutMs: this.raw.getSessionTimeout() };
  }

  /** Connect (once). Resolves when the first session is established. */
  connect(): Promise<void> {
    if (this.closed) return Promise.reject(new ZkError('ECLOSED', 'ZooKeeper client is closed'));
    if (this._state === 'connected') return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | null = null;
      const cleanup = () => {
        if (timer) clearTimeout(timer);
        this.off('state', onState);
        this.off('close', onClose);
      };
      const onState = (s: SessionState) => {
        if (s === 'connected') {
          cleanup();
          resolve();
        }
      };
      const onClose = () => {
        cleanup();
        reject(new ZkError('ECLOSED', 'ZooKeeper client closed while connecting'));
      };
      this.on('state', onState);
      this.on('close', onClose);
      if (this.connectTimeoutMs !== undefined && !this.everConnected) {
        const ms = this.connectTimeoutMs;
        timer = setTimeout(() => {
          cleanup();
          const err = new ZkConnectError(
            `could not connect to ZooKeeper at ${this.connection.display}${this.tls ? ' (TLS)' : ''} within ${ms / 1000}s`
            + (this.lastError === null ? '' : `: ${this.lastError}`),
            this.connection.display, ms, this.lastError);
          void this.close().finally(() => reject(err));
        }, ms);
      }
    });
    if (!this.started) {
      this.started = true;
      this.startRetryLog();
      this.raw.connect();
    }
    return done;
  }

  /** End the session (ephemeral znodes vanish now) and stop every timer. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.clearTimers();
    const raw = this.raw;
    this.gen++;
    this.failPending('ECLOSED', 'ZooKeeper client closed');
    this.loseBound();
    const wasConnected = this._state === 'connected';
    detach(raw);
    if (this.started) {
      if (wasConnected) {
        // Wait for the server to acknowledge the close so our ephemerals are gone on return.
        const acknowledged = await new Promise<boolean>((resolve) => {
          const t = setTimeout(() => resolve(false), CLOSE_WAIT_MS);
          raw.once('disconnected', () => {
            clearTimeout(t);
            resolve(true);
          });
          raw.close();
        });
        detach(raw);
        if (!acknowledged) abandon(raw);
      } else {
        abandon(raw);
      }
    }
    this.setState('lost');
    this.emit('close');
  }

  /** Register something that must be told when this session is lost (a held lock). */
  bind(b: SessionBound): void {
    this.bound.add(b);
  }

  unbind(b: SessionBound): void {
    this.bound.delete(b);
  }

  /** Resolves when connected (immediately if so); rejects if the client is closed first. */
  waitConnected(timeoutMs?: number): Promise<boolean> {
    if (this._state === 'connected') return Promise.resolve(true);
    if (this.closed) return Promise.reject(new ZkError('ECLOSED', 'ZooKeeper client is closed'));
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | null = null;
      const cleanup = () => {
        if (timer) clearTimeout(timer);
        this.off('state', onState);
        this.off('close', onClose);
      };
      const onState = (s: SessionState) => {
        if (s === 'connected') {
          cleanup();
          resolve(true);
        }
      };
      const onClose = () => {
        cleanup();
        reject(new ZkError('ECLOSED', 'ZooKeeper client is closed'));
      };
      this.on('state', onState);
      this.on('close', onClose);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          cleanup();
          resolve(false);
        }, Math.max(0, timeoutMs));
      }
    });
  }

  // ------------------------------------------------------------------ raw client lifecycle

  /** A raw client (over TLS when configured) whose failed connection attempts say why. */
  private newClient(connectString: string): Client {
    const raw = zookeeper.createClient(connectString, { sessionTimeout: this.sessionTimeoutMs, spinDelay: 1000, retries: 0 });
    const cm = (raw as unknown as { connectionManager: { onSocketError(err: Error): void } }).connectionManager;
    const onSocketError = cm.onSocketError;
    const noteError = (err: Error) => {
      const why = describeConnectError(err);
      // each new reason is logged once; repeats go into the periodic retry line
      if (why !== this.lastError && !this.closed) this.log.warn({ servers: this.connection.display, err: why }, `ZooKeeper connection attempt failed: ${why}`);
      this.lastError = why;
    };
    cm.onSocketError = function socketError(this: unknown, err: Error) {
      noteError(err);
      onSocketError.call(this, err);
    };
    if (this.tls) connectOverTls(raw, this.tls.files, this.tls.context, noteError);
    return raw;
  }

  private newRawClient(): Client {
    const gen = this.gen;
    const raw = this.newClient(this.connection.connectString);
    raw.on('connected', () => {
      if (gen !== this.gen || this.closed) return;
      this.everConnected = true;
      this.lastError = null;
      this.clearTimers();
      this.setState('connected');
    });
    raw.on('disconnected', () => {
      if (gen !== this.gen || this.closed || this._state !== 'connected') return;
      this.setState('suspended');
      // The server expires the session once it has not heard from us for the session timeout;
      // past that point nothing we held can be trusted, whatever the library believes.
      const ms = raw.getSessionTimeout() || this.sessionTimeoutMs;
      this.suspendTimer = setTimeout(() => {
        this.suspendTimer = null;
        if (gen === this.gen && this._state === 'suspended') this.renewSession('suspended for longer than the session timeout', true);
      }, ms);
    });
    raw.on('expired', () => {
      if (gen !== this.gen || this.closed) return;
      this.renewSession('session expired', false);
    });
    return raw;
  }

  /** The session is gone: fail what was in flight in it, tell owners, start a new one. */
  private renewSession(reason: string, closeOld: boolean): void {
    const old = this.raw;
    this.gen++;
    this.clearTimers();
    detach(old);
    if (closeOld) abandon(old);
    this.log.warn({ reason }, `ZooKeeper session lost (${reason}); starting a new session`);
    this.failPending('ESESSIONEXPIRED', `ZooKeeper session lost: ${reason}`);
    this.raw = this.newRawClient();
    this.loseBound();
    this.setState('lost');
    if (this.closed) return;
    this.startRetryLog();
    this.raw.connect();
  }

  private loseBound(): void {
    const bound = [...this.bound];
    this.bound.clear();
    for (const b of bound) {
      try {
        b.sessionLost();
      } catch (err) {
        this.log.error({ err }, 'error while marking a lock lost');
      }
    }
  }

  private failPending(code: ZkErrorCode, message: string): void {
    for (const p of [...this.pending]) {
      if (p.gen !== this.gen) p.fail(new ZkError(code, message));
    }
  }

  private setState(s: SessionState): void {
    if (s === this._state) return;
    this._state = s;
    this.log.debug(`ZooKeeper connection: ${s.toUpperCase()}`);
    this.emit('state', s);
    this.emit(s);
  }

  private startRetryLog(): void {
    if (this.retryLogTimer) return;
    this.retryLogTimer = setInterval(() => {
      if (this._state !== 'connected') {
        this.log.warn(`Retrying zookeeper connection to ${this.connection.display}${this.lastError === null ? '' : ` (last error: ${this.lastError})`}`);
      }
    }, RETRY_LOG_INTERVAL_MS);
    this.retryLogTimer.unref();
  }

  private clearTimers(): void {
    if (this.suspendTimer) clearTimeout(this.suspendTimer);
    this.suspendTimer = null;
    if (this.retryLogTimer) clearInterval(this.retryLogTimer);
    this.retryLogTimer = null;
  }

  // ------------------------------------------------------------------ primitive operations

  /** Run one raw operation in the current session; settle even if that session dies first. */
  private run<T>(op: string, path: string, start: (c: Client, done: (err: unknown, value?: T) => void) => void): Promise<T> {
    if (this.closed) return Promise.reject(new ZkError('ECLOSED', `${op} ${path}: ZooKeeper client is closed`));
    if (opStats !== null) countOp(op, path);
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const p: Pending = {
        gen: this.gen,
        fail: (err) => {
          if (settled) return;
          settled = true;
          this.pending.delete(p);
          reject(err);
        },
      };
      this.pending.add(p);
      try {
        start(this.raw, (err, value) => {
          if (settled) return;
          settled = true;
          this.pending.delete(p);
          if (err) reject(toZkError(err, op, path));
          else resolve(value as T);
        });
      } catch (err) {
        p.fail(toZkError(err, op, path));
      }
    });
  }

  /**
   * Several writes applied atomically (ZooKeeper's multi): all or none. Resolves with each op's
   * result (the created path for a create, the new Stat for a set); rejects with the first
   * failing op's error (ZkError ENONODE, ENODEEXISTS, ENOTEMPTY, EBADVERSION ...). `onApplied`
   * runs as soon as the reply says it was applied, before anything the server sent after it
   * (such as a notification of another client's next change) is handled.
   */
  multi(ops: readonly MultiOp[], onApplied?: () => void): Promise<MultiResult[]> {
    const first = ops[0]?.path ?? '/';
    return this.run<MultiResult[]>('multi', first, (c, done) => {
      const t = c.transaction();
      for (const op of ops) {
        if (op.op === 'create') t.create(op.path, op.data ?? EMPTY, MODES[op.mode ?? 'persistent']);
        else if (op.op === 'delete') t.remove(op.path, op.version ?? -1);
        else if (op.op === 'set') t.setData(op.path, op.data, op.version ?? -1);
        else t.check(op.path, op.version);
      }
      t.commit((err: unknown, results?: Array<{ path?: string; stat?: Stat }>) => {
        if (err) return done(err);
        // (called in the reply's own turn, before any later reply or notification is handled)
        onApplied?.();
        done(null, (results ?? []).map((r) => ({ path: r.path ?? null, stat: r.stat ?? null })));
      });
    });
  }

  /** Create one znode; returns the created path (with the sequence suffix for sequential modes). */
  createRaw(path: string, data: Buffer = EMPTY, mode: CreateMode = 'persistent'): Promise<string> {
    return this.run<string>('create', path, (c, done) => c.create(path, data, MODES[mode], done));
  }

  /** kazoo's `create(..., makepath=True)`: missing parents are created (persistent, empty). */
  async create(path: string, data: Buffer = EMPTY, mode: CreateMode = 'persistent', makepath = true): Promise<string> {
    try {
      return await this.createRaw(path, data, mode);
    } catch (err) {
      if (!makepath || !isNoNode(err)) throw err;
    }
    await this.mkdirp(paths.parent(path));
    return this.createRaw(path, data, mode);
  }

  /** kazoo's `ensure_path`: the path and its parents exist afterwards (persistent, empty data). */
  async mkdirp(path: string): Promise<void> {
    // the root always exists, unless it is a chroot not created yet
    if (path === '/' || path === '') return this.ensureChroot();
    try {
      await this.createRaw(path);
      return;
    } catch (err) {
      if (isNodeExists(err)) return;
      if (!isNoNode(err)) throw err;
    }
    const parent = paths.parent(path);
    if (parent === '/') await this.ensureChroot();
    else await this.mkdirp(parent);
    try {
      await this.createRaw(path);
    } catch (err) {
      if (!isNodeExists(err)) throw err;
    }
  }

  /** A missing chroot is created once through an un-chrooted client (ZooKeeper will not do it). */
  private ensureChroot(): Promise<void> {
    const chroot = this.connection.chroot;
    if (chroot === null) return Promise.resolve();
    this.chrootPromise ??= new Promise<void>((resolve, reject) => {
      const tmp = this.newClient(this.connection.display);
      const timer = setTimeout(() => {
        tmp.close();
        reject(new ZkError('ECONNLOSS', `could not create chroot ${chroot}`, { chroot }));
      }, Math.max(this.sessionTimeoutMs, 5000));
      tmp.once('connected', () => {
        tmp.mkdirp(chroot, (err) => {
          clearTimeout(timer);
          tmp.close();
          if (err) reject(toZkError(err, 'mkdirp', chroot));
          else resolve();
        });
      });
      tmp.connect();
    }).finally(() => {
      this.chrootPromise = null;
    });
    return this.chrootPromise;
  }

  /** Data and stat, or null if the znode does not exist. A watcher is set only if it exists. */
  async getDataStat(path: string, watcher?: (ev: RawEvent) => void): Promise<{ data: Buffer; stat: Stat } | null> {
    try {
      return await this.run<{ data: Buffer; stat: Stat }>('get', path, (c, done) => {
        const cb = (err: unknown, data?: Buffer, stat?: Stat) => done(err, err ? undefined : { data: data ?? EMPTY, stat: stat as Stat });
        if (watcher) c.getData(path, watcher, cb);
        else c.getData(path, cb);
      });
    } catch (err) {
      if (isNoNode(err)) return null;
      throw err;
    }
  }

  /** Data (empty Buffer for an empty znode) or null if it does not exist. */
  async getData(path: string): Promise<Buffer | null> {
    const r = await this.getDataStat(path);
    return r === null ? null : r.data;
  }

  /**
   * Overwrite data; throws ZkError ENONODE if the znode does not exist. `onApplied` runs as soon as
   * the reply arrives, before any later reply or notification is handled.
   */
  setData(path: string, data: Buffer, version = -1, onApplied?: () => void): Promise<Stat> {
    return this.run<Stat>('set', path, (c, done) => c.setData(path, data, version, (err: unknown, stat?: Stat) => {
      // (in the reply's own turn, before anything the server sent after it is handled)
      if (!err) onApplied?.();
      done(err, stat);
    }));
  }

  /** Stat or null; with a watcher, also watches for creation when absent (like kazoo exists). */
  stat(path: string, watcher?: (ev: RawEvent) => void): Promise<Stat | null> {
    return this.run<Stat | null>('exists', path, (c, done) => {
      const cb = (err: unknown, stat?: Stat) => done(err, err ? undefined : (stat ?? null));
      if (watcher) c.exists(path, watcher, cb);
      else c.exists(path, cb);
    });
  }

  async exists(path: string): Promise<boolean> {
    return (await this.stat(path)) !== null;
  }

  /** Children names, or null if the znode does not exist (then no watch is set). */
  async listChildren(path: string, watcher?: (ev: RawEvent) => void): Promise<string[] | null> {
    try {
      return await this.run<string[]>('get_children', path, (c, done) => {
        const cb = (err: unknown, children?: string[]) => done(err, err ? undefined : (children ?? []));
        if (watcher) c.getChildren(path, watcher, cb);
        else c.getChildren(path, cb);
      });
    } catch (err) {
      if (isNoNode(err)) return null;
      throw err;
    }
  }

  /** Children names ([] if the znode does not exist). */
  async getChildren(path: string): Promise<string[]> {
    return (await this.listChildren(path)) ?? [];
  }

  /** Delete one znode; throws ZkError ENONODE / ENOTEMPTY. */
  delete(path: string, version = -1): Promise<void> {
    return this.run<void>('delete', path, (c, done) => c.remove(path, version, (err) => done(err)));
  }

  /** Delete one znode, tolerating its absence. Returns whether it existed. */
  async deleteIfExists(path: string): Promise<boolean> {
    try {
      await this.delete(path);
      return true;
    } catch (err) {
      if (isNoNode(err)) return false;
      throw err;
    }
  }

  /** kazoo's `delete(recursive=True)`: children first (a lock dir before its node), absent is fine. */
  async deleteRecursive(path: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const children = await this.listChildren(path);
      if (children === null) return;
      await Promise.all(children.map((c) => this.deleteRecursive(paths.child(path, c))));
      try {
        await this.delete(path);
        return;
      } catch (err) {
        if (isNoNode(err)) return;
        // Someone created a child meanwhile (a lock contender): walk again, a few times.
        if (!(err instanceof ZkError && err.code === 'ENOTEMPTY') || attempt >= 5) throw err;
      }
    }
  }
}

/**
 * NODEPOOL_ZK_OPSTATS=<file>: every operation counted by kind and path pattern (digits and lock
 * uuids folded), written to <file>.<pid> every second. For benchmarks: `bench/launcher.ts`
 * documents its use.
 */
const opStats: Map<string, number> | null = process.env.NODEPOOL_ZK_OPSTATS ? new Map() : null;

function countOp(op: string, path: string): void {
  if (opStats === null) return;
  const key = `${op} ${path.replace(/[0-9a-f]{32}__lock__/g, 'H__lock__').replace(/\d+/g, 'N')}`;
  opStats.set(key, (opStats.get(key) ?? 0) + 1);
}

if (opStats !== null) {
  const file = `${process.env.NODEPOOL_ZK_OPSTATS as string}.${process.pid}`;
  setInterval(() => {
    const lines = [...opStats].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${v}\t${k}`);
    writeFileSync(file, lines.join('\n') + '\n');
  }, 1000).unref();
}
