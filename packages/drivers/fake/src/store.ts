// Where a fake cloud keeps its servers and images. In memory by default; with a state file the
// FILE is the cloud: every mutation is a locked read-modify-write that reaches the file (temp +
// rename, so readers never see half a file) before the API call resolves, and every read
// re-reads the file when it changed. That one mechanism gives both properties the tests need:
// a launcher killed with -9 right after createServer finds the server again on restart, and
// several launcher processes pointing at one state file see one cloud.
import {
  closeSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { ProviderError } from '@nodepool-ts/core/provider';
import type { FlavorInfo } from '@nodepool-ts/core/provider';

/**
 * Immutable once stored: a change replaces the record. The file store caches each record's JSON
 * by identity, so a write re-serialises only the servers that changed (stringify of the whole
 * state dominated createServer at a few thousand servers).
 */
export interface StoredServer {
  readonly id: string;
  readonly name: string;
  /** ms epoch */
  readonly createdAt: number;
  /** ms epoch when BUILD ends (createdAt + bootDelay) */
  readonly activeAt: number;
  /** decided at create time so every process sharing the file sees the same outcome */
  readonly bootResult: 'ACTIVE' | 'ERROR';
  readonly fault: string | null;
  /** ms epoch deleteServer was accepted; the server shows DELETED from then on */
  readonly deletedAt: number | null;
  /** ms epoch the server vanishes (deletedAt + deleteDelay) */
  readonly goneAt: number | null;
  readonly az: string | null;
  readonly hostId: string;
  readonly publicIpv4: string;
  readonly privateIpv4: string;
  readonly publicIpv6: string;
  readonly autoFloatingIp: boolean;
  /** booted on an IPv6 network: has a public IPv6 address */
  readonly ipv6: boolean;
  readonly flavor: FlavorInfo;
  readonly imageId: string;
  readonly keyName: string | null;
  readonly networks: string[];
  readonly securityGroups: string[];
  readonly userdata: string | null;
  readonly bootFromVolume: boolean;
  readonly volumeSize: number;
  readonly configDrive: boolean | null;
  readonly metadata: Record<string, string>;
}

export interface StoredImage {
  id: string;
  name: string;
  status: string;
  metadata: Record<string, string>;
  size: number | null;
  checksum: string | null;
  sha256: string | null;
  format: string | null;
  createdAt: number;
}

export interface FakeCloudState {
  version: 1;
  /** next address index; never reused so addresses stay unique across restarts */
  nextAddress: number;
  servers: Record<string, StoredServer>;
  images: Record<string, StoredImage>;
}

export function emptyState(): FakeCloudState {
  return { version: 1, nextAddress: 1, servers: {}, images: {} };
}

export interface StateStore {
  /** The current state; callers must not mutate it outside update(). */
  read(): FakeCloudState;
  /**
   * Applies `fn` atomically and durably: resolves only after the result is stored. `fn` must
   * throw BEFORE mutating if it rejects the change.
   */
  update<T>(fn: (state: FakeCloudState) => T): Promise<T>;
  close(): void;
}

export class MemoryStore implements StateStore {
  private readonly state = emptyState();

  read(): FakeCloudState {
    return this.state;
  }

  async update<T>(fn: (state: FakeCloudState) => T): Promise<T> {
    return fn(this.state);
  }

  close(): void {}
}

export interface FileStoreOptions {
  /** give up acquiring the lock after this long (a live holder that hangs) */
  lockTimeoutMs?: number;
  /** a lock file this old is broken even if its owner's pid seems alive (other host, pid reuse) */
  staleLockMs?: number;
}

interface FileStamp {
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
}

export class FileStore implements StateStore {
  private readonly lockPath: string;
  private readonly tmpPath: string;
  private readonly lockTimeoutMs: number;
  private readonly staleLockMs: number;
  private cache: FakeCloudState = emptyState();
  private stamp: FileStamp | null = null;
  private closed = false;

  constructor(private readonly provider: string, readonly path: string, opts: FileStoreOptions = {}) {
    this.lockPath = `${path}.lock`;
    this.tmpPath = `${path}.${process.pid}.tmp`;
    this.lockTimeoutMs = opts.lockTimeoutMs ?? 10_000;
    this.staleLockMs = opts.staleLockMs ?? 30_000;
    mkdirSync(dirname(path), { recursive: true });
  }

  read(): FakeCloudState {
    let st;
    try {
      st = statSync(this.path, { bigint: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT')) {
        this.cache = emptyState();
        this.stamp = null;
        return this.cache;
      }
      throw this.fsError('read', err);
    }
    // Every write renames a fresh file into place, so inode+size+mtime change on each write.
    const s = this.stamp;
    if (s && s.ino === st.ino && s.size === st.size && s.mtimeNs === st.mtimeNs) return this.cache;
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return this.read();
      throw this.fsError('read', err);
    }
    this.cache = parseState(this.provider, this.path, text);
    this.stamp = { ino: st.ino, size: st.size, mtimeNs: st.mtimeNs };
    return this.cache;
  }

  async update<T>(fn: (state: FakeCloudState) => T): Promise<T> {
    await this.acquire();
    // From here to release() nothing awaits: two FileStores in one process can never interleave,
    // and another process is kept out by the lock file.
    try {
      const state = this.read();
      let result: T;
      try {
        result = fn(state);
      } catch (err) {
        this.stamp = null; // `fn` may have touched the cache; reload from the file next time
        throw err;
      }
      this.write(state);
      return result;
    } finally {
      this.release();
    }
  }

  close(): void {
    this.closed = true;
  }

  private write(state: FakeCloudState): void {
    try {
      writeFileSync(this.tmpPath, serialize(state));
      renameSync(this.tmpPath, this.path);
      const st = statSync(this.path, { bigint: true });
      this.stamp = { ino: st.ino, size: st.size, mtimeNs: st.mtimeNs };
    } catch (err) {
      this.stamp = null;
      throw this.fsError('write', err);
    }
  }

  private async acquire(): Promise<void> {
    if (this.closed) throw new ProviderError(this.provider, 'fatal', `state file ${this.path} is closed`);
    const deadline = Date.now() + this.lockTimeoutMs;
    let delay = 1;
    for (;;) {
      try {
        const fd = openSync(this.lockPath, 'wx');
        try { writeSync(fd, String(process.pid)); } finally { closeSync(fd); }
        return;
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw this.fsError('lock', err);
      }
      if (this.breakStaleLock()) continue;
      if (Date.now() >= deadline) {
        throw new ProviderError(this.provider, 'retryable',
          `timeout after ${this.lockTimeoutMs} ms waiting for lock ${this.lockPath}`);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 16);
    }
  }

  private release(): void {
    try {
      unlinkSync(this.lockPath);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw this.fsError('unlock', err);
    }
  }

  /**
   * A holder killed with -9 leaves its lock behind: break it when the recorded pid is dead, or
   * when the lock is older than staleLockMs. Remaining race (documented): two waiters judging
   * the same stale lock at once may let one of them remove the other's fresh lock; the window
   * is one stat+read wide and only opens after a crash inside the critical section.
   */
  private breakStaleLock(): boolean {
    let content: string;
    let mtimeMs: number;
    try {
      content = readFileSync(this.lockPath, 'utf8');
      mtimeMs = statSync(this.lockPath).mtimeMs;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return true; // released meanwhile: retry at once
      throw this.fsError('lock', err);
    }
    const pid = Number(content);
    const old = Date.now() - mtimeMs > this.staleLockMs;
    const dead = content !== '' && Number.isInteger(pid) && pid > 0 && !pidAlive(pid);
    if (!old && !dead) return false;
    try {
      if (readFileSync(this.lockPath, 'utf8') !== content) return true;
      unlinkSync(this.lockPath);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw this.fsError('lock', err);
    }
    return true;
  }

  private fsError(what: string, err: unknown): ProviderError {
    const msg = err instanceof Error ? err.message : String(err);
    return new ProviderError(this.provider, 'retryable', `fake cloud state file ${what} failed: ${msg}`,
      { cause: err });
  }
}

const serverJson = new WeakMap<StoredServer, string>();

function serialize(state: FakeCloudState): string {
  const servers: string[] = [];
  for (const [id, s] of Object.entries(state.servers)) {
    let json = serverJson.get(s);
    if (json === undefined) {
      json = JSON.stringify(s);
      serverJson.set(s, json);
    }
    servers.push(`${JSON.stringify(id)}:${json}`);
  }
  return `{"version":1,"nextAddress":${JSON.stringify(state.nextAddress)},"servers":{${servers.join(',')}},`
    + `"images":${JSON.stringify(state.images)}}`;
}

function parseState(provider: string, path: string, text: string): FakeCloudState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ProviderError(provider, 'fatal', `fake cloud state file ${path} is not JSON`, { cause: err });
  }
  if (typeof raw !== 'object' || raw === null || (raw as { version?: unknown }).version !== 1) {
    throw new ProviderError(provider, 'fatal', `fake cloud state file ${path} has an unknown format`);
  }
  // Our own file, written by this module: trusted past the version check.
  const s = raw as FakeCloudState;
  return { version: 1, nextAddress: s.nextAddress ?? 1, servers: s.servers ?? {}, images: s.images ?? {} };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, 'EPERM');
  }
}

function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
