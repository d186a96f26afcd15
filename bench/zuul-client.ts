// A Zuul-like client over our ZooKeeper layer, shared by the benchmarks (bench/launcher.ts,
// bench/faults.ts) and the reliability suite (test/reliability). It does what Zuul's nodepool.py
// does with a node request: submit it (ephemeral, sequential), watch it until it is fulfilled or
// failed, lock every node it got, delete the request, mark the nodes in-use, run the "job", mark
// them used and unlock them — and it records what happened, so a test can count lost requests and
// doubly allocated nodes instead of trusting log lines.
import { newNodeRequest, requestFromData, type Node, type NodeRequest } from '@nodepool-ts/core/model';
import { randomUUID } from 'node:crypto';
import { isRetryable, paths, type ZooKeeper } from '@nodepool-ts/core/zk';

export const ZUUL_REQUESTOR = 'bench-zuul';

export function pct(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Math.round((sorted[Math.max(0, i)] ?? NaN) * 100) / 100;
}

/** Resolve when the request reaches fulfilled/failed, using ZooKeeper data watches (benchmarks). */
export function watchRequest(zk: ZooKeeper, id: string): Promise<NodeRequest> {
  return new Promise((resolvePromise, reject) => {
    const check = (): void => {
      zk.client.getData(paths.request(id), () => check(), (err, data) => {
        if (err) return reject(err);
        const r = requestFromData(id, data ?? null);
        if (r && (r.state === 'fulfilled' || r.state === 'failed')) resolvePromise(r);
      });
    };
    check();
  });
}

/** What a benchmark job got: its request and the nodes it used (tests check what was recorded). */
export interface JobRecord {
  request: string;
  nodes: string[];
}

/** One Zuul-like job for the benchmark: request, wait, lock, accept, use, return. Returns ms to fulfilment. */
export async function job(zk: ZooKeeper, label: string, onDone?: (r: JobRecord) => void): Promise<number> {
  const t0 = performance.now();
  const req = newNodeRequest({ node_types: [label], requestor: ZUUL_REQUESTOR });
  const id = await zk.submitNodeRequest(req, '200');
  const done = await watchRequest(zk, id);
  const latency = performance.now() - t0;
  if (done.state !== 'fulfilled') throw new Error(`request ${id} ${done.state}`);
  const nodes = [];
  for (const nid of done.nodes) {
    const n = await zk.getNode(nid);
    if (!n || n.allocated_to !== id) throw new Error(`node ${nid} not allocated to ${id}`);
    await zk.lockNode(n, { blocking: true, timeoutMs: 30_000 });
    nodes.push(n);
  }
  await zk.deleteNodeRequest(id);
  for (const n of nodes) {
    n.state = 'in-use';
    await zk.storeNode(n);
    n.state = 'used';
    await zk.storeNode(n);
    await zk.unlockNode(n);
  }
  onDone?.({ request: id, nodes: [...done.nodes] });
  return latency;
}

export interface DriveResult {
  requests: number;
  concurrency: number;
  seconds: number;
  requests_per_s: number;
  latency_ms: { p50: number; p95: number; p99: number; max: number };
}

/** `total` benchmark jobs of one label, `concurrency` at a time; `onJob` hears of each job done. */
export async function drive(zk: ZooKeeper, label: string, total: number, concurrency: number,
  onJob?: (r: JobRecord) => void): Promise<DriveResult> {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      next++;
      lat.push(await job(zk, label, onJob));
    }
  }));
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { requests: total, concurrency, seconds: Math.round(secs * 100) / 100,
    requests_per_s: Math.round((total / secs) * 10) / 10,
    latency_ms: { p50: pct(lat, 50), p95: pct(lat, 95), p99: pct(lat, 99), max: pct(lat, 100) } };
}

// ---------------------------------------------------------------- the recording load client

/**
 * What became of one request:
 * - fulfilled: nodes received, locked, used and returned (the job ran)
 * - failed: the launchers answered `failed`
 * - vanished: the request znode disappeared before an answer (our session was lost)
 * - timeout: no answer within the job timeout (a LOST request)
 * - error: the client could not do its part (e.g. ZooKeeper unreachable for a minute); `error` says why
 */
export type JobState = 'fulfilled' | 'failed' | 'vanished' | 'timeout' | 'error';

export interface JobOutcome {
  request: string | null;
  labels: string[];
  state: JobState;
  /** ms since the epoch */
  submittedAt: number;
  answeredAt: number | null;
  /** request creation to `fulfilled`/`failed` as seen by the client */
  latencyMs: number | null;
  nodes: string[];
  /** the `launcher` field of each node (the pool worker that launched it), in `nodes` order */
  launchers: string[];
  /** nodes of this request that were not allocated to it when the client locked them */
  misallocated: string[];
  error: string | null;
}

export interface JobOptions {
  labels: string[];
  /** how long the job keeps its nodes in-use (default 0) */
  holdMs?: number;
  priority?: string;
  requestor?: string;
  /** give up waiting for an answer after this long: the request counts as lost (default 120 s) */
  timeoutMs?: number;
  /** how long ZooKeeper operations are retried across connection losses (default 60 s) */
  retryMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Retry an idempotent ZooKeeper operation across connection losses and session changes. */
export async function zkRetry<T>(zk: ZooKeeper, fn: () => Promise<T>, retryMs = 60_000): Promise<T> {
  const deadline = Date.now() + retryMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isRetryable(err) || Date.now() > deadline) throw err;
      await zk.waitConnected(Math.max(0, deadline - Date.now())).catch(() => false);
      await sleep(50);
    }
  }
}

/**
 * Wait for an answer: a data watch does the work, a slow poll covers a watch lost with a
 * connection. Resolves with the answered request, or null if the znode vanished.
 */
async function waitAnswer(zk: ZooKeeper, id: string, timeoutMs: number, retryMs: number): Promise<NodeRequest | null | 'timeout'> {
  const deadline = Date.now() + timeoutMs;
  let wake: (() => void) | null = null;
  // one watcher function for the whole wait: the library keeps a function once per path
  const watcher = (): void => wake?.();
  for (;;) {
    const got = await zkRetry(zk, async () => zk.getDataStat(paths.request(id), watcher), retryMs);
    if (got === null) return null;
    const r = requestFromData(id, got.data);
    if (r && (r.state === 'fulfilled' || r.state === 'failed')) return r;
    const left = deadline - Date.now();
    if (left <= 0) return 'timeout';
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { wake = null; resolve(); }, Math.min(left, 1000));
      wake = () => { clearTimeout(t); wake = null; resolve(); };
    });
  }
}

/** Key of the mark a submitted request carries (round-tripped by the launchers as an unknown key). */
export const SUBMIT_MARK = 'bench_submit_id';

/**
 * Submit a request exactly once across connection losses. A dropped connection (a ZooKeeper
 * member stopped) fails the create in flight whether or not the server made it, and the session
 * survives: created, the request is served while nobody waits for it, and the job would count as
 * lost although no launcher lost anything. So the request carries a mark, and after a lost reply
 * the client looks for its request by that mark before creating it again (Curator's "protected"
 * create); in a new session the ephemeral request is gone anyway and is created again.
 */
export async function submitOnce(zk: ZooKeeper, req: NodeRequest, priority: string, retryMs = 60_000): Promise<string> {
  const mark = randomUUID();
  req.extra = { ...req.extra, [SUBMIT_MARK]: mark };
  const deadline = Date.now() + retryMs;
  for (;;) {
    const gen = zk.sessionGeneration;
    try {
      return await zk.submitNodeRequest(req, priority);
    } catch (err) {
      if (!isRetryable(err) || Date.now() > deadline) throw err;
      await zk.waitConnected(Math.max(0, deadline - Date.now())).catch(() => false);
      if (zk.sessionGeneration !== gen) continue;
      const found = await zkRetry(zk, () => findMarked(zk, priority, mark), Math.max(0, deadline - Date.now()));
      if (found !== null) {
        req.id = found;
        return found;
      }
    }
  }
}

async function findMarked(zk: ZooKeeper, priority: string, mark: string): Promise<string | null> {
  const ids = (await zk.getNodeRequestIds()).filter((id) => id.startsWith(`${priority}-`)).reverse();
  for (const id of ids) {
    const r = await zk.getNodeRequest(id);
    if (r?.extra[SUBMIT_MARK] === mark) return id;
  }
  return null;
}

/**
 * One Zuul job that never throws: the outcome says what happened. Node handling follows Zuul:
 * lock (blocking), check the allocation, delete the request, in-use, hold, used, unlock.
 */
export async function runJob(zk: ZooKeeper, opts: JobOptions): Promise<JobOutcome> {
  const retryMs = opts.retryMs ?? 60_000;
  const out: JobOutcome = {
    request: null, labels: opts.labels, state: 'error', submittedAt: Date.now(), answeredAt: null,
    latencyMs: null, nodes: [], launchers: [], misallocated: [], error: null,
  };
  const t0 = performance.now();
  try {
    const req = newNodeRequest({ node_types: opts.labels, requestor: opts.requestor ?? ZUUL_REQUESTOR });
    out.request = await submitOnce(zk, req, opts.priority ?? '200', retryMs);
    const id = out.request;
    const answer = await waitAnswer(zk, id, opts.timeoutMs ?? 120_000, retryMs);
    if (answer === 'timeout') {
      out.state = 'timeout';
      return out;
    }
    if (answer === null) {
      out.state = 'vanished';
      return out;
    }
    out.answeredAt = Date.now();
    out.latencyMs = performance.now() - t0;
    out.nodes = [...answer.nodes];
    if (answer.state === 'failed') {
      out.state = 'failed';
      await zkRetry(zk, () => zk.deleteNodeRequest(id), retryMs);
      return out;
    }
    const locked: Node[] = [];
    try {
      for (const nid of answer.nodes) {
        const n = await zkRetry(zk, () => zk.getNode(nid), retryMs);
        if (!n) throw new Error(`node ${nid} of request ${id} does not exist`);
        await zkRetry(zk, () => zk.lockNode(n, { blocking: true, timeoutMs: 30_000 }), retryMs);
        locked.push(n);
        const fresh = await zkRetry(zk, () => zk.getNode(nid), retryMs);
        if (!fresh || fresh.allocated_to !== id) out.misallocated.push(nid);
        if (fresh) Object.assign(n, fresh);
        out.launchers.push(n.launcher ?? '');
      }
      await zkRetry(zk, () => zk.deleteNodeRequest(id), retryMs);
      for (const n of locked) {
        n.state = 'in-use';
        await zkRetry(zk, () => zk.storeNode(n), retryMs);
      }
      if (opts.holdMs) await sleep(opts.holdMs);
      for (const n of locked) {
        n.state = 'used';
        await zkRetry(zk, () => zk.storeNode(n), retryMs);
      }
    } finally {
      for (const n of locked) await zk.unlockNode(n).catch(() => undefined);
    }
    out.state = 'fulfilled';
    return out;
  } catch (err) {
    out.state = 'error';
    out.error = (err as Error).message;
    return out;
  }
}

export interface LoadOptions extends JobOptions {
  /** jobs running at once */
  concurrency: number;
  /** label of each job, chosen in turn (overrides `labels`) */
  labelSets?: string[][];
  /** pause between two jobs of one worker (ms, default 0): a steady rather than saturating load */
  thinkMs?: number;
}

/** A steady Zuul-like load: `concurrency` workers running jobs back to back until stopped. */
export class ZuulLoad {
  readonly outcomes: JobOutcome[] = [];
  private stopping = false;
  private workers: Promise<void>[] = [];
  private n = 0;

  constructor(private readonly zk: ZooKeeper, private readonly opts: LoadOptions) {}

  start(): void {
    this.workers = Array.from({ length: this.opts.concurrency }, () => this.worker());
  }

  /** Stop submitting; resolves when every job under way has ended. */
  async stop(): Promise<JobOutcome[]> {
    this.stopping = true;
    await Promise.all(this.workers);
    return this.outcomes;
  }

  /** Jobs answered so far (fulfilled or failed). */
  get answered(): number {
    return this.outcomes.filter((o) => o.state === 'fulfilled' || o.state === 'failed').length;
  }

  private async worker(): Promise<void> {
    while (!this.stopping) {
      const sets = this.opts.labelSets;
      const labels = sets && sets.length > 0 ? sets[this.n++ % sets.length] ?? this.opts.labels : this.opts.labels;
      this.outcomes.push(await runJob(this.zk, { ...this.opts, labels }));
      if (this.opts.thinkMs && !this.stopping) await sleep(this.opts.thinkMs);
    }
  }
}

/** Counts of a set of outcomes, and the nodes that went to more than one job. */
export function summarize(outcomes: readonly JobOutcome[]): {
  total: number; fulfilled: number; failed: number; lost: number; errors: number;
  doubleAllocated: string[]; misallocated: string[]; latency_ms: { p50: number; p95: number; max: number };
} {
  const owner = new Map<string, string>();
  const doubles = new Set<string>();
  for (const o of outcomes) {
    if (o.state !== 'fulfilled') continue;
    for (const n of o.nodes) {
      const prev = owner.get(n);
      if (prev !== undefined && prev !== o.request) doubles.add(n);
      owner.set(n, o.request ?? '');
    }
  }
  const lat = outcomes.filter((o) => o.latencyMs !== null).map((o) => o.latencyMs ?? 0).sort((a, b) => a - b);
  return {
    total: outcomes.length,
    fulfilled: outcomes.filter((o) => o.state === 'fulfilled').length,
    failed: outcomes.filter((o) => o.state === 'failed').length,
    lost: outcomes.filter((o) => o.state === 'timeout' || o.state === 'vanished').length,
    errors: outcomes.filter((o) => o.state === 'error').length,
    doubleAllocated: [...doubles],
    misallocated: outcomes.flatMap((o) => o.misallocated),
    latency_ms: { p50: pct(lat, 50), p95: pct(lat, 95), max: pct(lat, 100) },
  };
}
