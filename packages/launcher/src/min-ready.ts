// min-ready (§3.8): keep `min-ready` READY unallocated nodes of every label, refilled as soon as
// one is taken (node-cache events, debounced) rather than on Nodepool's 10 s main loop.
//
// Refilling at once has one cost Nodepool's loop did not: a label that cannot be launched (its
// image gone, the cloud refusing) would get a new min-ready request the moment the last one
// failed — hundreds of requests and node records a minute. So after a failed min-ready request
// a label waits before the next one: 1 s, doubling with each failure in a row, at most 10 s
// (Nodepool's own pace: a pool at capacity declines min-ready requests, and once it has room the
// pool should refill as soon as Nodepool's would); a fulfilled one or a configuration reload
// starts it over. Zuul's own requests never wait.
import { newNodeRequest } from '@nodepool-ts/core/model';
import { settledWithin } from '@nodepool-ts/core/util';
import { MIN_READY_REQUESTOR } from './decide.js';
import type { Launcher } from './launcher.js';

const DEBOUNCE_MS = 20;
const RETRY_BASE_MS = 1_000;
const RETRY_MAX_MS = 10_000;
export const MIN_READY_PRIORITY = '100';
/** how long stop() waits for a pass in flight */
export const STOP_WAIT_MS = 10_000;

export class MinReadyWorker {
  private readonly submitted = new Map<string, string[]>();
  private timer: NodeJS.Timeout | null = null;
  /** labels whose last min-ready requests failed: how many times in a row, and when to try again */
  private readonly failures = new Map<string, { count: number; retryAt: number }>();
  private retryTimer: NodeJS.Timeout | null = null;
  private retryTimerAt = 0;
  private running = false;
  private again = false;
  private stopped = false;
  private current: Promise<void> | null = null;
  private readonly log;

  constructor(private readonly launcher: Launcher) {
    this.log = launcher.logger('nodepool.MinReady');
  }

  trigger(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.run();
    }, DEBOUNCE_MS);
  }

  /** A handler fulfilled one of the requests (nodes released, request deleted): forget it. */
  done(id: string): void {
    for (const [label, ids] of this.submitted) {
      const i = ids.indexOf(id);
      if (i < 0) continue;
      ids.splice(i, 1);
      this.failures.delete(label);
      if (ids.length === 0) this.submitted.delete(label);
      this.trigger();
      return;
    }
  }

  /** No pass starts any more; the one running (ZooKeeper calls only) is waited for. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    // bounded: a ZooKeeper reply that never comes must not hold the launcher's stop
    if (!(await settledWithin(this.current, STOP_WAIT_MS))) {
      this.log.warn(`Min-ready pass still running after ${STOP_WAIT_MS / 1000} s; stopping without it`);
    }
  }

  /** The configuration changed (perhaps what made the launches fail): no label waits any more. */
  configChanged(): void {
    this.failures.clear();
    this.trigger();
  }

  /** When the next min-ready request of `label` may be submitted (epoch ms); 0: at once. */
  retryAt(label: string): number {
    return this.failures.get(label)?.retryAt ?? 0;
  }

  private failed(label: string): void {
    const count = (this.failures.get(label)?.count ?? 0) + 1;
    const wait = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(count - 1, 16));
    this.failures.set(label, { count, retryAt: Date.now() + wait });
    this.log.info(`Min-ready request for label ${label} failed (${count} in a row); the next one in ${wait / 1000} s`);
  }

  /** Run a pass at `at` (the earliest of the labels' waits wins). */
  private wakeAt(at: number): void {
    if (this.stopped || (this.retryTimer && this.retryTimerAt <= at)) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimerAt = at;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.trigger();
    }, Math.max(0, at - Date.now()));
    this.retryTimer.unref();
  }

  async run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.current = this.passes();
    await this.current;
  }

  private async passes(): Promise<void> {
    try {
      do {
        this.again = false;
        if (this.launcher.zk.state === 'connected') await this.pass();
      } while (this.again && !this.stopped);
    } catch (err) {
      if (this.stopped) this.log.info({ err: (err as Error).message }, 'Min-ready pass cut short by the launcher\'s stop');
      else this.log.error({ err: (err as Error).message }, 'Error in min-ready pass');
    } finally {
      this.running = false;
      this.current = null;
    }
  }

  private async pass(): Promise<void> {
    const l = this.launcher;
    // (1) Settle the requests we submitted earlier.
    for (const [label, ids] of this.submitted) {
      const keep: string[] = [];
      let failed = false;
      for (const id of ids) {
        const req = l.requestCache.get(id) ?? (await l.zk.getNodeRequest(id));
        if (!req) continue;
        if (req.state === 'fulfilled') {
          for (const nodeId of req.nodes) {
            const node = await l.zk.getNode(nodeId);
            if (node && node.allocated_to === id) {
              node.allocated_to = null;
              await l.storeNode(node, 'MinReady', 'min-ready node released to the pool');
            }
          }
          await l.zk.deleteNodeRequest(id);
          this.failures.delete(label);
        } else if (req.state === 'failed') {
          await l.zk.deleteNodeRequest(id);
          l.recordRequest(req, 'MinReady', 'min-ready request failed');
          failed = true;
        } else {
          keep.push(id);
        }
      }
      if (failed) this.failed(label);
      if (keep.length) this.submitted.set(label, keep);
      else this.submitted.delete(label);
    }
    // (2) Submit what is missing, counting outstanding min-ready requests of every launcher.
    const ready = new Map<string, number>();
    for (const n of l.nodeCache.all()) {
      if (n.state !== 'ready' || n.allocated_to !== null) continue;
      for (const t of n.type) ready.set(t, (ready.get(t) ?? 0) + 1);
    }
    const outstanding = new Map<string, number>();
    for (const r of l.requestCache.all()) {
      if (r.requestor !== MIN_READY_REQUESTOR || r.state === 'failed') continue;
      if (r.state === 'fulfilled') continue;
      for (const t of r.node_types) outstanding.set(t, (outstanding.get(t) ?? 0) + 1);
    }
    for (const label of l.config.labels.values()) {
      if (this.stopped) return;
      if (label.minReady <= 0 || this.submitted.has(label.name)) continue;
      const need = label.minReady - (ready.get(label.name) ?? 0) - (outstanding.get(label.name) ?? 0);
      if (need <= 0) continue;
      const retryAt = this.retryAt(label.name);
      if (retryAt > Date.now()) {
        this.wakeAt(retryAt);
        continue;
      }
      if (!(await l.labelServable(label.name))) continue;
      const ids: string[] = [];
      for (let i = 0; i < need && !this.stopped; i++) {
        const req = newNodeRequest({ node_types: [label.name], requestor: MIN_READY_REQUESTOR, reuse: false });
        const id = await l.zk.submitNodeRequest(req, MIN_READY_PRIORITY);
        l.recordRequest(req, 'MinReady', 'min-ready request submitted');
        ids.push(id);
      }
      this.submitted.set(label.name, ids);
      this.log.info(`Creating ${need} min-ready request(s) for label ${label.name}`);
    }
  }
}
