// The Recorder: history and current state of nodes, requests, launch attempts, builds and
// uploads, written to the database behind the launcher's back. ZooKeeper stays the source of
// truth; the database may lag or be down and the launcher must not notice. So every record call
// is synchronous, O(1) and cannot throw: it snapshots the object and appends it to a memory
// queue. One background loop writes the queue in batches, one transaction each, in order.
//
// When the database is slow or down, events stay queued (up to maxQueue), then overflow to an
// append-only spill file in the state dir; after recovery the loop writes the oldest first:
// a failed batch, then the spill file, then memory. If even the spill file overflows or cannot
// be read, the lost stretch is recorded in `history_gaps` and the current rows are rebuilt from a
// ZooKeeper snapshot (the `reconcile` callback).
import { mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { getLogger, type Logger } from '../log/index.js';
import type { ImageBuild, ImageUpload, Node, NodeRequest, NodeState, RequestState } from '../model/types.js';
import { sleep } from '../util/index.js';
import { classifyError, closeKnex, isDataError, makeKnex, migrateToLatest, type KnexHandle } from './connection.js';
import { DatabaseError, SchemaTooNewError } from './errors.js';
import {
  buildFields, clip, snapshotNode, snapshotRequest, uploadFields,
  type NodeEvent, type RecorderEvent, type RequestEvent,
} from './events.js';
import { Fifo } from './queue.js';
import { MIGRATIONS, type Migration } from './schema.js';
import { SpillFile } from './spill.js';
import { describeTarget, parseDatabaseUri, type DatabaseTarget } from './uri.js';
import { liveNodes, liveRequests, pruneHistory, recordGap, writeBatch } from './writer.js';

export interface ReconcileSnapshot {
  nodes: Node[];
  requests: NodeRequest[];
}

export interface RecorderOptions {
  /** `Config.databaseUri`; null = SQLite `<stateDir>/nodepool.db` */
  databaseUri: string | null;
  /** `Config.stateDir`: SQLite file and spill file */
  stateDir: string;
  /** current nodes and requests from ZooKeeper, used after history was lost */
  reconcile?: () => Promise<ReconcileSnapshot>;
  /** delete history older than this many days; null (default) keeps everything */
  retentionDays?: number | null;
  /** this daemon's id, written with the history gaps it records */
  launcher?: string | null;
  /** longest wait before queued events are written (ms, default 500): under a steady load, one
   * transaction per interval; flush() and a full batch do not wait */
  flushIntervalMs?: number;
  /** events per transaction at most; a full batch is written at once (default 5,000) */
  batchSize?: number;
  /** events kept in memory before spilling to disk (default 50,000) */
  maxQueue?: number;
  /** size cap of the spill file (bytes, default 512 MiB); 0 disables spilling */
  maxSpillBytes?: number;
  /** cap of the retry backoff (ms, default 30 s) */
  maxBackoffMs?: number;
  /** a batch that takes longer is abandoned and its connections cut (ms, default 15 s) */
  writeTimeoutMs?: number;
  /**
   * a schema migration that takes longer is abandoned and its connections cut (ms); 0 (the
   * default) sets no limit: a migration may rebuild large tables, and one cut on a busy server
   * would be cut again on every retry. A dead server still fails it (connect errors, TCP
   * keepalive), and stop() cuts it.
   */
  migrationTimeoutMs?: number;
  /** the schema migrations to apply (default: this code's; tests pass longer lists) */
  migrations?: readonly Migration[];
  /** how long stop() tries to write what is queued before keeping it in the spill file (ms, default 5 s) */
  stopTimeoutMs?: number;
  /** how often retention runs (ms, default 1 h) */
  retentionIntervalMs?: number;
  /** longest stretch of pruning between two batches of events (ms, default 2,000) */
  retentionSliceMs?: number;
  log?: Logger;
}

export interface RecordContext {
  /** who made or observed the change (launcher id, `nodepool` CLI, ...) */
  launcher?: string | null;
  reason?: string | null;
}

export interface LaunchAttemptRecord {
  nodeId: string;
  provider: string | null;
  pool?: string | null;
  label?: string | null;
  /** 1-based attempt number */
  attempt: number;
  /** milliseconds since the epoch (Date.now()) */
  startedAt: number;
  endedAt: number;
  /** the launcher's LaunchResult: `ready`, `error.quota`, `error.status`, ... */
  result: string;
  error?: string | null;
  launcher?: string | null;
}

export interface RecorderStatus {
  database: string;
  connected: boolean;
  /** Unix seconds the current outage began; null when healthy */
  outageSince: number | null;
  queued: number;
  spillBytes: number;
  enqueued: number;
  written: number;
  /** events lost for good (spill file full or unreadable, or recorded after stop) */
  dropped: number;
}

interface Gap {
  dropped: number;
  first: number | null;
  last: number | null;
  reasons: Set<string>;
}

interface Outage {
  since: number;
  writtenBefore: number;
}

const DAY = 86_400;
/** objects whose last state is remembered; past this the memory starts over (events then take the caller's `prev`) */
const MAX_REMEMBERED = 200_000;

function remember<S>(states: Map<string, S>, id: string, state: S | null): void {
  if (state === null) {
    states.delete(id);
    return;
  }
  if (states.size >= MAX_REMEMBERED && !states.has(id)) states.clear();
  states.set(id, state);
}

function now(): number {
  return Date.now() / 1000;
}

function iso(t: number | null): string {
  return t === null ? 'unknown' : new Date(t * 1000).toISOString();
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Stop waiting for `p` after `ms` (it keeps running; used for callbacks we cannot cancel). */
async function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
    })]);
  } finally {
    clearTimeout(timer);
  }
}

class WriteTimeout extends Error {
  constructor(ms: number, what = 'write') {
    super(`${what} timed out after ${ms} ms`);
    this.name = 'WriteTimeout';
  }
}

export class Recorder {
  readonly target: DatabaseTarget;
  private readonly log: Logger;
  private readonly opts: Required<Omit<RecorderOptions, 'reconcile' | 'log' | 'launcher' | 'retentionDays'>>
    & Pick<RecorderOptions, 'reconcile'> & { retentionDays: number | null; launcher: string | null };
  private readonly memory = new Fifo<RecorderEvent>();
  private readonly spill: SpillFile;
  private readonly run = `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
  private seq = 0;
  private doneSeq = 0;
  /** a batch taken from memory whose write failed: older than anything spilled since */
  private retryHead: RecorderEvent[] | null = null;
  private inflight = false;
  private handle: KnexHandle | null = null;
  private migrated = false;
  private outage: Outage | null = null;
  private gap: Gap | null = null;
  private backoffMs = 0;
  private nextRetention = 0;
  /** a retention pass not finished yet: its cutoff and what it deleted so far */
  private pruning: { cutoff: number; deleted: number } | null = null;
  private reconcileRetryAt = 0;
  private spillScheduled = false;
  private spillWarned = false;
  private lockTail: Promise<void> = Promise.resolve();
  private waker: (() => void) | null = null;
  private wakePending = false;
  /** the last step wrote a batch taken from memory */
  private fromMemory = false;
  private backoffAbort = new AbortController();
  private tick: NodeJS.Timeout | null = null;
  private loop: Promise<void> | null = null;
  private started = false;
  private halt = false;
  private stopped = false;
  private internalErrors = 0;
  /** uids of events the database refused for their values; skipped when a spill chunk is replayed */
  private readonly poisoned = new Set<string>();
  private counters = { enqueued: 0, written: 0, dropped: 0 };
  /** the last state recorded or noted per live node / request (the `from` of the next event) */
  private readonly nodeStates = new Map<string, NodeState>();
  private readonly requestStates = new Map<string, RequestState>();

  constructor(opts: RecorderOptions) {
    this.target = parseDatabaseUri(opts.databaseUri, opts.stateDir);
    this.log = opts.log ?? getLogger('nodepool.Recorder');
    this.opts = {
      databaseUri: opts.databaseUri,
      stateDir: opts.stateDir,
      reconcile: opts.reconcile,
      retentionDays: opts.retentionDays ?? null,
      launcher: opts.launcher ?? null,
      flushIntervalMs: opts.flushIntervalMs ?? 500,
      batchSize: Math.max(1, opts.batchSize ?? 5000),
      maxQueue: Math.max(1, opts.maxQueue ?? 50_000),
      maxSpillBytes: Math.max(0, opts.maxSpillBytes ?? 512 * 1024 * 1024),
      maxBackoffMs: opts.maxBackoffMs ?? 30_000,
      writeTimeoutMs: opts.writeTimeoutMs ?? 15_000,
      migrationTimeoutMs: Math.max(0, opts.migrationTimeoutMs ?? 0),
      migrations: opts.migrations ?? MIGRATIONS,
      stopTimeoutMs: opts.stopTimeoutMs ?? 5_000,
      retentionIntervalMs: opts.retentionIntervalMs ?? 3_600_000,
      retentionSliceMs: opts.retentionSliceMs ?? 2_000,
    };
    this.spill = new SpillFile(opts.stateDir, this.opts.maxSpillBytes);
  }

  /** The database as logs name it (no password). */
  describe(): string {
    return describeTarget(this.target);
  }

  /**
   * Connect, migrate, and start the writer. An unreachable database is not an error (the
   * recorder queues and catches up later); a schema newer than this code is.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    mkdirSync(this.opts.stateDir, { recursive: true });
    await this.spill.load();
    if (this.spill.pending) {
      this.log.info({ spill: this.spill.path, bytes: this.spill.bytes },
        `found ${this.spill.bytes} bytes of history not yet written by an earlier run in ${this.spill.path}; writing them first`);
    }
    this.handle = makeKnex(this.target, { poolMax: 2 });
    try {
      await this.ensureSchema();
    } catch (err) {
      if (err instanceof SchemaTooNewError) {
        await this.closeHandle();
        this.stopped = true;
        throw err;
      }
      if (!this.stopped) this.failed(err);
    }
    // stop() was called while we were connecting: it already kept the queue; start nothing
    if (this.stopped) return;
    this.tick = setInterval(() => this.onTick(), this.opts.flushIntervalMs);
    this.tick.unref();
    this.loop = this.writerLoop();
  }

  // ---- the hot path: synchronous, O(1), never throws, never touches the database ----

  /**
   * A node znode was created (prev null), changed, or removed (next null). The `from` state of
   * the event is the last state recorded (or noted) here for the node, and `prev` only for a
   * node this recorder knows nothing of: a caller's `prev` comes from a watch-fed cache, which
   * may not show the caller's own previous write yet, or may already show the write being
   * recorded, and the trail would then skip or repeat a state.
   */
  nodeChanged(prev: Node | null, next: Node | null, ctx: RecordContext = {}): void {
    try {
      const cur = next ?? prev;
      if (cur === null || this.stopped) return;
      const id = cur.id;
      if (id === null || id === '') return;
      const known = this.nodeStates.get(id);
      const from = known ?? prev?.state ?? null;
      const to = next?.state ?? null;
      const removed = next === null;
      remember(this.nodeStates, id, to);
      const node = snapshotNode(cur, id);
      // a removed node's row keeps the last state it was recorded in
      if (removed && from !== null) node.state = from;
      const ev: NodeEvent = {
        kind: 'node', uid: this.uid(), at: now(), node, removed, from, to,
        transition: (known === undefined && prev === null) || removed || from !== to,
        launcher: ctx.launcher ?? null, reason: clip(ctx.reason ?? null),
      };
      this.push(ev);
    } catch (err) {
      this.internalError(err);
    }
  }

  /** A node request was created (prev null), changed, or removed (next null); `from` as for nodes. */
  requestChanged(prev: NodeRequest | null, next: NodeRequest | null, ctx: RecordContext = {}): void {
    try {
      const cur = next ?? prev;
      if (cur === null || this.stopped) return;
      const id = cur.id;
      if (id === null || id === '') return;
      const known = this.requestStates.get(id);
      const from = known ?? prev?.state ?? null;
      const to = next?.state ?? null;
      const removed = next === null;
      remember(this.requestStates, id, to);
      const request = snapshotRequest(cur, id);
      if (removed && from !== null) request.state = from;
      const ev: RequestEvent = {
        kind: 'request', uid: this.uid(), at: now(), request, removed, from, to,
        transition: (known === undefined && prev === null) || removed || from !== to,
        launcher: ctx.launcher ?? null, reason: clip(ctx.reason ?? null),
      };
      this.push(ev);
    } catch (err) {
      this.internalError(err);
    }
  }

  /**
   * A node changed (null: it is gone) by someone whose change this recorder does not record (a
   * client, another launcher): later events recorded here start from that state.
   */
  noteNodeState(id: string, state: NodeState | null): void {
    if (state === null) this.nodeStates.delete(id);
    else if (this.nodeStates.has(id)) this.nodeStates.set(id, state);
  }

  /** As noteNodeState, for a request. */
  noteRequestState(id: string, state: RequestState | null): void {
    if (state === null) this.requestStates.delete(id);
    else if (this.requestStates.has(id)) this.requestStates.set(id, state);
  }

  /** One try at booting a node, successful or not. */
  launchAttempt(a: LaunchAttemptRecord): void {
    try {
      if (this.stopped || !a.nodeId) return;
      this.push({
        kind: 'attempt', uid: this.uid(), at: now(), node_id: a.nodeId, provider: a.provider ?? null,
        pool: a.pool ?? null, label: a.label ?? null, attempt: Number.isInteger(a.attempt) ? a.attempt : 0,
        started_at: Number.isFinite(a.startedAt) ? a.startedAt / 1000 : now(),
        ended_at: Number.isFinite(a.endedAt) ? a.endedAt / 1000 : now(),
        result: clip(a.result, 32) ?? 'unknown', error: clip(a.error ?? null),
        launcher: a.launcher ?? null,
      });
    } catch (err) {
      this.internalError(err);
    }
  }

  /** An image build record was created, changed or removed. */
  buildChanged(prev: ImageBuild | null, next: ImageBuild | null, _ctx: RecordContext = {}): void {
    try {
      const cur = next ?? prev;
      if (cur === null || this.stopped || cur.image === null || cur.id === null) return;
      this.push({
        kind: 'build', uid: this.uid(), at: now(), image: cur.image, build_id: cur.id, removed: next === null,
        ...buildFields(cur),
      });
    } catch (err) {
      this.internalError(err);
    }
  }

  /** An image upload record was created, changed or removed. */
  uploadChanged(prev: ImageUpload | null, next: ImageUpload | null, _ctx: RecordContext = {}): void {
    try {
      const cur = next ?? prev;
      if (cur === null || this.stopped || cur.image === null || cur.build_id === null || cur.provider === null
        || cur.id === null) return;
      this.push({
        kind: 'upload', uid: this.uid(), at: now(), image: cur.image, build_id: cur.build_id, provider: cur.provider,
        upload_id: cur.id, removed: next === null, ...uploadFields(cur),
      });
    } catch (err) {
      this.internalError(err);
    }
  }

  private uid(): string {
    this.seq += 1;
    return `${this.run}-${this.seq.toString(36)}`;
  }

  private push(e: RecorderEvent): void {
    this.memory.push(e);
    this.counters.enqueued += 1;
    const n = this.memory.length;
    // a full batch is waiting: wake the writer once (not at every later push, which would leave
    // a stale wake-up that ends its next wait early and writes a tiny batch)
    if (n === this.opts.batchSize) this.wake();
    if (n > this.opts.maxQueue && !this.spillScheduled) {
      this.spillScheduled = true;
      setImmediate(() => { void this.spillOverflow(); });
    }
  }

  private internalError(err: unknown): void {
    this.internalErrors += 1;
    if (this.internalErrors === 1) this.log.error({ err: message(err) }, 'recorder: could not record an event (further ones logged at debug)');
    else this.log.debug({ err: message(err) }, 'recorder: could not record an event');
  }

  // ---- status, flush, stop ----

  status(): RecorderStatus {
    return {
      database: this.describe(),
      connected: this.outage === null && this.migrated,
      outageSince: this.outage?.since ?? null,
      queued: this.memory.length + (this.retryHead?.length ?? 0),
      spillBytes: this.spill.bytes,
      enqueued: this.counters.enqueued,
      written: this.counters.written,
      dropped: this.counters.dropped,
    };
  }

  /**
   * Wait until everything recorded before this call is written (or known lost), at most
   * timeoutMs. Resolves whether that happened.
   */
  async flush(timeoutMs = 10_000): Promise<boolean> {
    const target = this.seq;
    const deadline = Date.now() + timeoutMs;
    this.wake();
    for (;;) {
      if (this.doneSeq >= target || this.idle()) return true;
      // a recorder still starting (connecting, migrating) is waited for; one never started or
      // stopped has no writer to wait for
      if (Date.now() >= deadline || (this.loop === null && (this.stopped || !this.started))) return false;
      await sleep(10);
      this.wake();
    }
  }

  private idle(): boolean {
    return this.memory.length === 0 && this.retryHead === null && !this.spill.pending && !this.inflight;
  }

  /**
   * Write what is queued (for at most stopTimeoutMs), keep the rest in the spill file for the
   * next start, and close the database.
   */
  async stop(): Promise<void> {
    if (this.stopped && this.loop === null) return;
    this.stopped = true;
    if (this.tick !== null) clearInterval(this.tick);
    this.tick = null;
    if (this.loop !== null) {
      // a last attempt now rather than at the end of a long backoff
      this.backoffAbort.abort();
      this.backoffAbort = new AbortController();
      const done = await this.flush(this.opts.stopTimeoutMs);
      this.halt = true;
      this.wake();
      if (!done) this.handle?.cutConnections('recorder stopping');
      await this.loop;
      this.loop = null;
    }
    await this.locked(async () => {
      const left = (this.retryHead?.length ?? 0) + this.memory.length;
      if (left === 0) return;
      try {
        if (this.retryHead !== null) await this.spill.prepend(this.retryHead);
        this.retryHead = null;
        const { dropped } = await this.spill.append(this.memory.take(this.memory.length));
        if (dropped.length > 0) this.noteLost(dropped.length, dropped[0]?.at ?? null, dropped[dropped.length - 1]?.at ?? null, 'spill file full at shutdown');
        this.log.warn({ spill: this.spill.path, events: left },
          `recorder stopped with ${left} events not written to ${this.describe()}; kept in ${this.spill.path} for the next start`);
      } catch (err) {
        this.noteLost(left, null, null, `spill file unwritable at shutdown: ${message(err)}`);
        this.log.error({ err: message(err) }, `recorder stopped and lost ${left} events: spill file ${this.spill.path} unwritable`);
      }
    });
    await this.closeHandle();
  }

  private async closeHandle(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    if (h === null) return;
    await closeKnex(h, 'recorder closed');
  }

  // ---- the writer ----

  private wake(): void {
    const w = this.waker;
    if (w !== null) {
      this.waker = null;
      w();
    } else {
      // the loop is busy: make its next wait return at once (no lost wake-up)
      this.wakePending = true;
    }
  }

  private waitForWork(ms: number): Promise<void> {
    if (this.wakePending) {
      this.wakePending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.waker = null; resolve(); }, ms);
      this.waker = () => { clearTimeout(t); resolve(); };
    });
  }

  private onTick(): void {
    if (this.memory.length > this.opts.maxQueue && !this.spillScheduled) {
      this.spillScheduled = true;
      void this.spillOverflow();
    }
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lockTail.then(fn);
    this.lockTail = run.then(() => undefined, () => undefined);
    return run;
  }

  private knex(): Knex {
    if (this.handle === null) throw new DatabaseError('connect', `recorder for ${this.describe()} is closed`);
    return this.handle.knex;
  }

  /** `p`, abandoned after `ms` (0: never) with its connections cut. */
  private async withTimeout<T>(p: Promise<T>, ms = this.opts.writeTimeoutMs, what = 'write'): Promise<T> {
    if (ms <= 0) return p;
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const guard = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        // fail the hung statement on its socket; the pool then reconnects for the next try
        this.handle?.cutConnections(`recorder ${what} timeout (${ms} ms)`);
        reject(new WriteTimeout(ms, what));
      }, ms);
    });
    try {
      return await Promise.race([p, guard]);
    } finally {
      clearTimeout(timer);
      // never let two writes overlap: wait for the cut statement to give up
      if (timedOut) await p.then(() => undefined, () => undefined);
    }
  }

  /** Migrate under its own time limit (migrationTimeoutMs), not the write timeout. */
  private async ensureSchema(): Promise<void> {
    if (this.migrated) return;
    const r = await this.withTimeout(migrateToLatest(this.knex(), this.target, { migrations: this.opts.migrations }),
      this.opts.migrationTimeoutMs, 'schema migration');
    this.migrated = true;
    if (r.applied.length > 0) {
      this.log.info({ database: this.describe(), from: r.from, to: r.to },
        `database ${this.describe()}: schema migrated from version ${r.from} to ${r.to}`);
    }
  }

  private async writeEvents(events: RecorderEvent[]): Promise<void> {
    this.inflight = true;
    try {
      await this.withTimeout(writeBatch(this.knex(), this.target.engine, events));
    } finally {
      this.inflight = false;
    }
    this.counters.written += events.length;
    for (let i = events.length - 1; i >= 0; i--) {
      const s = this.seqOf(events[i]?.uid ?? '');
      if (s !== null) {
        if (s > this.doneSeq) this.doneSeq = s;
        break;
      }
    }
  }

  /**
   * Write a batch; when the database refuses some VALUES (a data error, not an outage) write the
   * events one by one and drop only those it refuses, so one bad event cannot stall history.
   */
  private async writeResilient(events: RecorderEvent[]): Promise<void> {
    const todo = this.poisoned.size === 0 ? events : events.filter((e) => !this.poisoned.has(e.uid));
    try {
      await this.writeEvents(todo);
      return;
    } catch (err) {
      if (!isDataError(err)) throw err;
    }
    for (const e of todo) {
      try {
        await this.writeEvents([e]);
      } catch (err) {
        if (!isDataError(err)) throw err; // an outage after all: the batch is replayed (idempotent)
        this.poisoned.add(e.uid);
        this.noteLost(1, e.at, e.at, 'events refused by the database');
        this.log.error({ uid: e.uid, kind: e.kind, err: classifyError(err, this.target).message },
          `recorder: the database refused a ${e.kind} event; dropped it`);
      }
    }
  }

  private seqOf(uid: string): number | null {
    const prefix = `${this.run}-`;
    return uid.startsWith(prefix) ? parseInt(uid.slice(prefix.length), 36) : null;
  }

  private async writerLoop(): Promise<void> {
    while (!this.halt) {
      let worked: boolean;
      try {
        if (!this.migrated) await this.ensureSchema();
        worked = await this.step();
        this.succeeded();
      } catch (err) {
        this.failed(err);
        if (this.halt) break;
        // while stop() flushes (it bounds the time) retry promptly instead of backing off
        await sleep(this.stopped ? Math.min(this.backoffMs, 200) : this.backoffMs, this.backoffAbort.signal);
        continue;
      }
      // After a batch from memory, let events gather for a flush interval unless a full batch is
      // already waiting (a full batch or flush() ends the wait): under a steady load one large
      // transaction per interval instead of one per round trip, which costs the launcher and the
      // database server far less per event. A failed batch and the spill file are not held back.
      const gather = this.fromMemory && this.memory.length < this.opts.batchSize;
      if ((!worked || gather) && !this.halt) await this.waitForWork(this.opts.flushIntervalMs);
    }
  }

  /** Write the oldest pending events. Resolves false when there was nothing to do. */
  private async step(): Promise<boolean> {
    this.fromMemory = false;
    if (this.retryHead !== null) {
      await this.writeResilient(this.retryHead);
      this.retryHead = null;
      return true;
    }
    const pick = await this.locked(async (): Promise<
      { from: 'spill'; events: RecorderEvent[]; nextOffset: number } | { from: 'memory'; events: RecorderEvent[] } | null
    > => {
      if (this.spill.pending) {
        try {
          const chunk = await this.spill.read(this.opts.batchSize);
          if (chunk.bad > 0) this.noteLost(chunk.bad, null, chunk.events[0]?.at ?? null, 'unreadable lines in the spill file');
          return { from: 'spill', events: chunk.events, nextOffset: chunk.nextOffset };
        } catch (err) {
          const n = this.spill.count;
          this.noteLost(n, null, null, `spill file unreadable: ${message(err)}`);
          this.log.error({ err: message(err), spill: this.spill.path },
            `recorder: cannot read ${this.spill.path}; the ${n > 0 ? n : 'unknown number of'} events in it are lost`);
          await this.spill.reset().catch(() => undefined);
          return null;
        }
      }
      if (this.memory.length === 0) return null;
      // in flight from here on, so that flush() never sees the batch nowhere
      this.inflight = true;
      return { from: 'memory', events: this.memory.take(this.opts.batchSize) };
    });
    if (pick === null) {
      await this.housekeeping();
      return false;
    }
    if (pick.from === 'memory') {
      this.fromMemory = true;
      try {
        await this.writeResilient(pick.events);
      } catch (err) {
        this.retryHead = pick.events;
        throw err;
      } finally {
        this.inflight = false;
      }
      // a launcher that is never idle still prunes: a slice between two batches
      await this.retention();
      return true;
    }
    if (pick.events.length > 0) await this.writeResilient(pick.events);
    await this.locked(() => this.spill.commit(pick.nextOffset, pick.events.length));
    return true;
  }

  private succeeded(): void {
    this.backoffMs = 0;
    if (this.outage !== null && this.retryHead === null && !this.spill.pending && this.memory.length < this.opts.batchSize) {
      const wrote = this.counters.written - this.outage.writtenBefore;
      const secs = (now() - this.outage.since).toFixed(1);
      this.log.info({ database: this.describe(), written: wrote, outageSeconds: Number(secs) },
        `database ${this.describe()} is back after ${secs} s: wrote ${wrote} events queued meanwhile`);
      this.outage = null;
      this.spillWarned = false;
    }
  }

  private failed(err: unknown): void {
    const e = err instanceof WriteTimeout
      ? new DatabaseError('connect', `database ${this.describe()} did not answer: ${err.message}`, { database: this.describe() })
      : classifyError(err, this.target);
    this.backoffMs = Math.min(this.opts.maxBackoffMs, Math.max(250, this.backoffMs * 2));
    if (this.outage === null) {
      this.outage = { since: now(), writtenBefore: this.counters.written };
      this.log.error({ database: this.describe(), kind: e.kind, err: e.message },
        `recorder cannot write history: ${e.message}; events are queued in memory (up to ${this.opts.maxQueue}, then ` +
        `${this.spill.path}) and written when the database is back; retrying with backoff up to ${this.opts.maxBackoffMs / 1000} s`);
    } else {
      this.log.debug({ database: this.describe(), err: e.message, backoffMs: this.backoffMs }, 'recorder: database still failing');
    }
  }

  private async spillOverflow(): Promise<void> {
    try {
      await this.locked(async () => {
        this.spillScheduled = false;
        if (this.memory.length <= this.opts.maxQueue) return;
        // down to half the bound, so the file is appended in large chunks, not per event
        const events = this.memory.take(this.memory.length - Math.floor(this.opts.maxQueue / 2));
        if (!this.spillWarned) {
          this.spillWarned = true;
          this.log.warn({ spill: this.spill.path, queued: events.length },
            `recorder: more than ${this.opts.maxQueue} events waiting for ${this.describe()}; spilling the oldest to ${this.spill.path}`);
        }
        if (this.opts.maxSpillBytes === 0) {
          this.noteLost(events.length, events[0]?.at ?? null, events[events.length - 1]?.at ?? null, 'memory queue full and spilling disabled');
          return;
        }
        try {
          const { dropped } = await this.spill.append(events);
          if (dropped.length > 0) {
            this.noteLost(dropped.length, dropped[0]?.at ?? null, dropped[dropped.length - 1]?.at ?? null,
              `spill file full (${this.opts.maxSpillBytes} bytes)`);
          }
        } catch (err) {
          this.noteLost(events.length, events[0]?.at ?? null, events[events.length - 1]?.at ?? null,
            `spill file unwritable: ${message(err)}`);
        }
      });
    } catch (err) {
      this.internalError(err);
    }
  }

  private noteLost(count: number, first: number | null, last: number | null, reason: string): void {
    this.counters.dropped += count;
    if (this.gap === null) {
      this.gap = { dropped: 0, first: null, last: null, reasons: new Set() };
      this.log.error({ reason, spill: this.spill.path },
        `recorder is losing history (${reason}); current nodes and requests will be rebuilt from ZooKeeper once the database is back`);
    }
    const g = this.gap;
    g.dropped += count;
    if (first !== null) g.first = g.first === null ? first : Math.min(g.first, first);
    if (last !== null) g.last = g.last === null ? last : Math.max(g.last, last);
    g.reasons.add(reason);
  }

  /** Work done when the queue is empty: reconciliation after a gap, retention. */
  private async housekeeping(): Promise<void> {
    if (this.gap !== null && now() >= this.reconcileRetryAt) await this.reconcileGap();
    await this.retention();
  }

  /** When due, one slice (retentionSliceMs at most) of deleting history past retentionDays. */
  private async retention(): Promise<void> {
    const t = now();
    if (this.opts.retentionDays !== null && Date.now() >= this.nextRetention) {
      this.nextRetention = Date.now() + this.opts.retentionIntervalMs;
      // one pass's cutoff holds until it is complete, so its log line counts all it deleted
      this.pruning ??= { cutoff: t - this.opts.retentionDays * DAY, deleted: 0 };
      const { cutoff } = this.pruning;
      try {
        const r = await this.withTimeout(pruneHistory(this.knex(), cutoff, 2000, this.opts.retentionSliceMs));
        this.pruning.deleted += r.deleted;
        if (r.complete) {
          const n = this.pruning.deleted;
          this.pruning = null;
          if (n > 0) this.log.info({ deleted: n, before: iso(cutoff) }, `retention: deleted ${n} history rows older than ${iso(cutoff)}`);
        } else {
          // more to delete: go on once the queued events are written, not an interval later
          this.nextRetention = Date.now();
        }
      } catch (err) {
        this.pruning = null;
        this.log.warn({ err: message(err) }, 'retention: pruning history failed; will try again later');
      }
    }
  }

  private async reconcileGap(): Promise<void> {
    const gap = this.gap;
    if (gap === null) return;
    const reasons = [...gap.reasons].join('; ');
    let summary = 'no reconcile source was given, current rows may be stale';
    if (this.opts.reconcile !== undefined) {
      let snap: ReconcileSnapshot;
      try {
        // a hung snapshot must not hold the writer (or stop()) forever
        snap = await deadline(this.opts.reconcile(), this.opts.writeTimeoutMs * 2, 'reading the ZooKeeper snapshot');
      } catch (err) {
        this.reconcileRetryAt = now() + this.opts.maxBackoffMs / 1000;
        this.log.warn({ err: message(err) }, 'recorder: reading ZooKeeper to reconcile history failed; will try again');
        return;
      }
      const events = await this.withTimeout(this.reconcileEvents(snap));
      for (let i = 0; i < events.length; i += this.opts.batchSize) {
        await this.writeEvents(events.slice(i, i + this.opts.batchSize));
      }
      const changed = events.filter((e) => e.kind === 'node' || e.kind === 'request');
      const removed = changed.filter((e) => (e.kind === 'node' || e.kind === 'request') && e.removed).length;
      summary = `current rows reconciled from ZooKeeper (${snap.nodes.length} nodes, ${snap.requests.length} requests; ` +
        `${changed.length - removed} rows refreshed, ${removed} marked deleted)`;
    }
    await this.withTimeout(recordGap(this.knex(), {
      startedAt: gap.first, endedAt: gap.last, dropped: gap.dropped, reason: reasons, launcher: this.opts.launcher,
    }, now()));
    this.gap = null;
    this.log.warn({ dropped: gap.dropped, from: iso(gap.first), to: iso(gap.last), reasons },
      `history incomplete: ${gap.dropped} events lost between ${iso(gap.first)} and ${iso(gap.last)} (${reasons}); ${summary}`);
  }

  /** Events that bring the current rows in line with a ZooKeeper snapshot. */
  private async reconcileEvents(snap: ReconcileSnapshot): Promise<RecorderEvent[]> {
    const reason = 'reconciled from ZooKeeper after a history gap';
    const launcher = this.opts.launcher;
    const knex = this.knex();
    const [nodes, requests] = [await liveNodes(knex), await liveRequests(knex)];
    const out: RecorderEvent[] = [];
    const t = now();
    const seenNodes = new Set<string>();
    for (const n of snap.nodes) {
      if (n.id === null) continue;
      seenNodes.add(n.id);
      const stored = nodes.get(n.id);
      out.push({
        kind: 'node', uid: this.uid(), at: t, node: snapshotNode(n, n.id), removed: false,
        from: stored?.state ?? null, to: n.state, transition: stored === undefined || stored.state !== n.state,
        launcher, reason,
      });
    }
    for (const [id, stored] of nodes) {
      if (seenNodes.has(id)) continue;
      out.push({ kind: 'node', uid: this.uid(), at: t, node: stored, removed: true, from: stored.state, to: null, transition: true, launcher, reason });
    }
    const seenRequests = new Set<string>();
    for (const r of snap.requests) {
      if (r.id === null) continue;
      seenRequests.add(r.id);
      const stored = requests.get(r.id);
      out.push({
        kind: 'request', uid: this.uid(), at: t, request: snapshotRequest(r, r.id), removed: false,
        from: stored?.state ?? null, to: r.state, transition: stored === undefined || stored.state !== r.state,
        launcher, reason,
      });
    }
    for (const [id, stored] of requests) {
      if (seenRequests.has(id)) continue;
      out.push({ kind: 'request', uid: this.uid(), at: t, request: stored, removed: true, from: stored.state, to: null, transition: true, launcher, reason });
    }
    return out;
  }
}
