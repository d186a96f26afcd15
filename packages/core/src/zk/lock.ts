// kazoo's Lock recipe, reproduced so that Nodepool, Zuul and the Python CLI see our contenders
// and we see theirs (§1.5): `<lock path>/<uuid4 hex>__lock__<seq>` EPHEMERAL|SEQUENTIAL with the
// identifier as data, the lowest sequence holds the lock, a waiter watches only its immediate
// predecessor. The lock directory is created on demand and never removed. kazoo's
// `acquire(ephemeral=False)` is the `persistent` option: the contender outlives our session (the
// metastatic driver holds its backing nodes that way across launcher restarts).
import { randomUUID } from 'node:crypto';
import { LockError, LockTimeoutError, ZkError, isRetryable } from './errors.js';
import { paths } from './paths.js';
import type { RawEvent, SessionBound, SessionState, ZkSession } from './session.js';

/** kazoo's contender pattern (Lock and the read/write lock's readers). */
export const CONTENDER_RE = /(__lock__|__rlock__)(-?\d{10})$/;

export interface AcquireOptions {
  /** Wait for the lock (default true, like kazoo). */
  blocking?: boolean;
  /** With blocking: give up after this long with LockTimeoutError. Default: wait forever. */
  timeoutMs?: number;
  /**
   * The lock directory probably does not exist yet (a new request's or a new node's lock): the
   * first attempt creates it and our contender in one multi, and a contender created together
   * with its directory is the only one, so the lock is ours without listing the children. When
   * the directory exists after all, the usual recipe follows (one wasted round trip).
   */
  createParent?: boolean;
}

/** Contender znode names in lock order (kazoo sorts by the captured sequence string). */
export function sortContenders(children: readonly string[]): string[] {
  const found: Array<{ name: string; seq: string }> = [];
  for (const name of children) {
    const m = CONTENDER_RE.exec(name);
    if (m) found.push({ name, seq: m[2] as string });
  }
  found.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
  return found.map((f) => f.name);
}

const NOT_A_CONTENDER = Symbol('not-a-contender');

/** The contender just before `own`, null if `own` is first, or a marker if `own` is absent. */
function predecessorOf(children: readonly string[], own: string): string | null | typeof NOT_A_CONTENDER {
  if (!children.includes(own) || !CONTENDER_RE.test(own)) return NOT_A_CONTENDER;
  let pred: string | null = null;
  for (const name of sortContenders(children)) {
    if (name === own) return pred;
    pred = name;
  }
  return NOT_A_CONTENDER;
}

type WaitResult = 'changed' | 'timeout' | 'lost';

/** Thrown inside the acquire loop when our contender vanished: start over (kazoo's ForceRetry). */
class Retry extends Error {}

export class Lock implements SessionBound {
  readonly path: string;
  private readonly data: Buffer;
  /** `<uuid4 hex>__lock__`: lets a retry find the contender a lost reply created. */
  private readonly prefix: string;
  private node: string | null = null;
  private nodeGen = -1;
  private acquired = false;
  private acquiring = false;
  /** kazoo's ephemeral=False: a PERSISTENT_SEQUENTIAL contender, not tied to the session */
  private readonly persistent: boolean;

  constructor(private readonly zk: ZkSession, path: string, identifier?: string, opts: { persistent?: boolean } = {}) {
    this.path = path;
    this.data = Buffer.from(identifier ?? '', 'utf8');
    this.prefix = `${randomUUID().replace(/-/g, '')}__lock__`;
    this.persistent = opts.persistent === true;
  }

  private get contenderMode(): 'ephemeral_sequential' | 'persistent_sequential' {
    return this.persistent ? 'persistent_sequential' : 'ephemeral_sequential';
  }

  /** Our contender still exists in the current session (a persistent one in any session). */
  private contenderValid(gen: number): boolean {
    return this.persistent || gen === this.zk.sessionGeneration;
  }

  /** A persistent lock is not released by a lost session: it needs no session notifications. */
  private bindSession(): void {
    if (!this.persistent) this.zk.bind(this);
  }

  get isAcquired(): boolean {
    return this.acquired;
  }

  /** Our contender's znode name while we hold or wait for the lock. */
  get contenderName(): string | null {
    return this.node;
  }

  /**
   * Take the lock. Non-blocking: false if someone else holds it (our contender is removed).
   * Blocking: waits; with timeoutMs, throws LockTimeoutError when it runs out.
   */
  async acquire(opts: AcquireOptions = {}): Promise<boolean> {
    const blocking = opts.blocking ?? true;
    if (this.acquired || this.acquiring) {
      // kazoo's Lock is not re-entrant; a blocking second acquire there waits forever.
      if (!blocking) return false;
      throw new LockError(`Lock on ${this.path} is already ${this.acquired ? 'held' : 'being acquired'} by this Lock object`, this.path);
    }
    this.acquiring = true;
    const deadline = opts.timeoutMs === undefined ? null : Date.now() + Math.max(0, opts.timeoutMs);
    try {
      let got = false;
      let triedGen = -1;
      if (opts.createParent === true) {
        const first = await this.createWithParent();
        if (first === true) got = true;
        else triedGen = first;
      }
      if (!got) got = await this.inner(blocking, deadline, opts.timeoutMs ?? 0, triedGen);
      if (!got) await this.cleanup();
      return got;
    } catch (err) {
      await this.cleanup();
      throw err;
    } finally {
      this.acquiring = false;
    }
  }

  /** Nodepool's lock helpers: acquire or throw LockError "Did not get lock on <path>". */
  async acquireOrThrow(opts: AcquireOptions = {}): Promise<void> {
    if (!(await this.acquire(opts))) throw new LockError(`Did not get lock on ${this.path}`, this.path);
  }

  /** Run fn while holding the lock (acquireOrThrow semantics), releasing it afterwards. */
  async withLock<T>(fn: () => Promise<T>, opts: AcquireOptions = {}): Promise<T> {
    await this.acquireOrThrow(opts);
    try {
      return await fn();
    } finally {
      await this.release();
    }
  }

  /** Delete our contender; a lock we do not hold is a no-op (kazoo returns False). */
  async release(): Promise<void> {
    if (!this.acquired) return;
    const node = this.node;
    const gen = this.nodeGen;
    this.acquired = false;
    this.node = null;
    if (!this.persistent) this.zk.unbind(this);
    if (node !== null) await this.deleteContender(node, gen);
  }

  /** The identifiers (data) of all contenders in lock order; the holder first. */
  async contenders(): Promise<string[]> {
    const names = sortContenders(await this.zk.getChildren(this.path));
    const data = await Promise.all(names.map((n) => this.zk.getData(paths.child(this.path, n))));
    const out: string[] = [];
    for (const d of data) if (d !== null) out.push(d.toString('utf8'));
    return out;
  }

  /** Called by the session when it is lost: our ephemeral contender is gone with it. */
  sessionLost(): void {
    this.acquired = false;
    this.node = null;
  }

  /**
   * The recipe has deleted our contender together with the locked znode (one multi): the lock is
   * no longer held and nothing is left to delete.
   */
  forgetDeleted(): void {
    if (!this.acquired) return;
    this.acquired = false;
    this.node = null;
    if (!this.persistent) this.zk.unbind(this);
  }

  /** Our contender's full path while we hold the lock in the current session, else null. */
  get heldContenderPath(): string | null {
    if (!this.acquired || this.node === null || !this.contenderValid(this.nodeGen)) return null;
    return paths.child(this.path, this.node);
  }

  /**
   * createParent's first attempt: true when the lock is ours; otherwise the session generation in
   * which our contender may exist after all (a lost reply; -1 when surely not), for the recipe.
   */
  private async createWithParent(): Promise<true | number> {
    const gen = this.zk.sessionGeneration;
    try {
      const [, created] = await this.zk.multi([
        { op: 'create', path: this.path },
        { op: 'create', path: paths.child(this.path, this.prefix), data: this.data, mode: this.contenderMode },
      ]);
      if (created?.path == null || (!this.persistent && gen !== this.zk.sessionGeneration)) return -1;
      this.node = paths.basename(created.path);
      this.nodeGen = gen;
      this.acquired = true;
      this.bindSession();
      return true;
    } catch (err) {
      // The directory exists (the usual case for a second locker) or a parent is missing: nothing
      // was created. A lost reply: the recipe looks for our contender by its prefix first.
      return isRetryable(err) ? gen : -1;
    }
  }

  private remaining(deadline: number | null): number | undefined {
    return deadline === null ? undefined : Math.max(0, deadline - Date.now());
  }

  private async inner(blocking: boolean, deadline: number | null, timeoutMs: number, triedFirst = -1): Promise<boolean> {
    // Session generation of a create whose reply may have been lost (kazoo's create_tried).
    let triedGen = triedFirst;
    let prefetched: string[] | null = null;
    for (;;) {
      try {
        if (this.node === null || !this.contenderValid(this.nodeGen)) {
          const gen = this.zk.sessionGeneration;
          let found: string | null = null;
          // (a persistent contender whose create reply was lost may exist from any session)
          if (triedGen === gen || (this.persistent && triedGen !== -1)) found = await this.findNode();
          triedGen = gen;
          if (found === null) {
            // The children listing is sent right behind the create, without waiting for it: the
            // server answers one session's requests in order, so the listing already holds our
            // contender (one round trip instead of two). If the create had to make the lock
            // directory first, the listing predates it and is not used.
            const created = this.zk.create(paths.child(this.path, this.prefix), this.data, this.contenderMode, true);
            const listed = this.zk.listChildren(this.path).catch(() => null);
            this.node = paths.basename(await created);
            prefetched = await listed;
          } else {
            this.node = found;
          }
          this.nodeGen = gen;
        }
        for (;;) {
          const own = this.node;
          const children = prefetched !== null && prefetched.includes(own) ? prefetched : await this.zk.getChildren(this.path);
          prefetched = null;
          const pred = predecessorOf(children, own);
          if (pred === NOT_A_CONTENDER || !this.contenderValid(this.nodeGen)) throw new Retry();
          if (pred === null) {
            this.acquired = true;
            this.bindSession();
            return true;
          }
          if (!blocking) return false;
          const r = await this.waitFor(pred, deadline);
          if (r === 'timeout') throw new LockTimeoutError(this.path, timeoutMs);
          if (r === 'lost') throw new Retry();
        }
      } catch (err) {
        if (err instanceof Retry) {
          this.node = null;
          triedGen = -1;
        } else if (!isRetryable(err)) {
          throw err;
        }
        if (this.zk.isClosed) throw new ZkError('ECLOSED', `lock ${this.path}: ZooKeeper client is closed`);
        if (this.zk.state !== 'connected') {
          const ok = await this.zk.waitConnected(this.remaining(deadline));
          if (!ok) throw new LockTimeoutError(this.path, timeoutMs);
        }
        if (deadline !== null && Date.now() >= deadline) throw new LockTimeoutError(this.path, timeoutMs);
      }
    }
  }

  /** Wait until the predecessor changes or goes, the session is lost, or the deadline passes. */
  private waitFor(pred: string, deadline: number | null): Promise<WaitResult> {
    const left = this.remaining(deadline);
    if (left === 0) return Promise.resolve('timeout');
    return new Promise<WaitResult>((resolve, reject) => {
      let done = false;
      let timer: NodeJS.Timeout | null = null;
      const finish = (r: WaitResult | Error) => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        this.zk.off('state', onState);
        if (r instanceof Error) reject(r);
        else resolve(r);
      };
      const onState = (s: SessionState) => {
        if (s === 'lost') finish('lost');
      };
      const watcher = (_ev: RawEvent) => finish('changed');
      this.zk.on('state', onState);
      if (left !== undefined) timer = setTimeout(() => finish('timeout'), left);
      // kazoo uses get() so that a vanished predecessor leaves no watch behind.
      this.zk.getDataStat(paths.child(this.path, pred), watcher).then(
        (r) => {
          if (r === null) finish('changed');
        },
        (err: unknown) => finish(err instanceof Error ? err : new Error(String(err))),
      );
    });
  }

  private async findNode(): Promise<string | null> {
    for (const c of await this.zk.getChildren(this.path)) if (c.startsWith(this.prefix)) return c;
    return null;
  }

  /** kazoo's best-effort cleanup after a failed acquire: remove our contender if we made one. */
  private async cleanup(): Promise<void> {
    if (this.acquired) return;
    const node = this.node;
    const gen = this.nodeGen;
    this.node = null;
    try {
      const name = node ?? (this.contenderValid(gen) ? await this.findNode() : null);
      if (name !== null) await this.deleteContender(name, gen);
    } catch {
      // best effort, as in kazoo: an ephemeral contender dies with the session anyway
    }
  }

  private async deleteContender(node: string, gen: number): Promise<void> {
    for (;;) {
      if (!this.contenderValid(gen) || this.zk.isClosed) return; // gone with its session
      try {
        await this.zk.deleteIfExists(paths.child(this.path, node));
        return;
      } catch (err) {
        if (!isRetryable(err)) throw err;
        if (!(await this.zk.waitConnected(this.zk.sessionTimeout))) return;
      }
    }
  }
}
