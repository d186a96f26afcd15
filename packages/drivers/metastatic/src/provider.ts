// The metastatic driver (Nodepool 5.0+): nodes carved out of "backing nodes" that this launcher
// requests from other providers, like any requestor does. A backing node is asked for with a node
// request (requestor `NodePool:metastatic:<provider>`, priority 100); once fulfilled it is locked
// with a PERSISTENT lock whose identifier is that same string, marked `in-use`, and its `user_data`
// records the label and slot count. Each node on it records its backing node and slot in
// `driver_data`. That is all the state there is: a restarted launcher (or Nodepool itself)
// rebuilds the slot map from ZooKeeper. An idle backing node is released after `grace-time`
// (marked `used` and unlocked, so its own provider deletes it).
import { randomUUID } from 'node:crypto';
import type { MetastaticPoolLabel, MetastaticProvider } from '@nodepool-ts/core/config';
import type { Logger } from '@nodepool-ts/core/log';
import { cloneNode, newNodeRequest, type Node } from '@nodepool-ts/core/model';
import { nowSeconds, sleep } from '@nodepool-ts/core/util';
import { isRetryable, type NodeCache, type ZooKeeper } from '@nodepool-ts/core/zk';
import {
  BackingNodeRecord, decodeUserData, encodeUserData, metastaticOwner, releaseDecision, slotOf,
} from './backing.js';
import { MetastaticError } from './errors.js';

const BY = 'MetastaticAdapter';
/** Nodepool's priority of a backing request */
export const BACKING_REQUEST_PRIORITY = '100';
/** States of a backing node that still carries its nodes (an operator may hold it). */
const ALIVE = new Set(['in-use', 'hold']);

/** What the driver needs from the launcher (a subset of its DriverContext). */
export interface MetastaticDriverContext {
  zk: ZooKeeper;
  nodeCache: NodeCache;
  logger(name: string): Logger;
  /** store a node and record the change (history database, metrics) */
  storeNode(node: Node, by: string, reason: string): Promise<void>;
}

export interface MetastaticManagerOptions {
  /** a pass (idle backing nodes, vanished ones) runs at least this often (default 30 s) */
  sweepIntervalMs?: number;
  /** wait this long for the lock of a backing node just handed to us (Nodepool: 30 s) */
  lockTimeoutMs?: number;
  /** a backing request is looked at this often besides its watch (default 10 s) */
  requestRecheckMs?: number;
}

/** One backing node as `describe()` shows it (the dashboard, SIGUSR2, tests). */
export interface BackingNodeStatus {
  label: string;
  backingNode: string | null;
  request: string | null;
  slots: (string | null)[];
  failed: boolean;
  gone: boolean;
  launched: number;
  lastUsed: number;
}

interface Pending {
  promise: Promise<void>;
  resolve(): void;
  reject(err: Error): void;
}

function pending(): Pending {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // a failure nobody waits for (every waiter timed out) is not an unhandled rejection
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

export class MetastaticManager {
  readonly kind = 'metastatic' as const;
  readonly driver = 'metastatic';
  readonly name: string;
  /** requestor, `user_data` owner and lock identifier: `NodePool:metastatic:<provider>` */
  readonly owner: string;
  private readonly log: Logger;
  private readonly opts: Required<MetastaticManagerOptions>;
  /** metastatic label -> its backing nodes (and pending requests), oldest first */
  private readonly records = new Map<string, BackingNodeRecord[]>();
  private readonly waiting = new Map<BackingNodeRecord, Pending>();
  private readonly abort = new AbortController();
  private readonly tasks = new Set<Promise<unknown>>();
  private initDone: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private passing: Promise<void> | null = null;
  private passAgain = false;
  private stopped = false;
  private readonly onCacheChange = (id: string): void => {
    if (this.isBackingNode(id)) this.schedule(0);
  };

  constructor(public config: MetastaticProvider, private readonly ctx: MetastaticDriverContext, opts: MetastaticManagerOptions = {}) {
    this.name = config.name;
    this.owner = metastaticOwner(config.name);
    this.log = ctx.logger(`nodepool.driver.metastatic.MetastaticAdapter.${config.name}`);
    this.opts = {
      sweepIntervalMs: opts.sweepIntervalMs ?? 30_000,
      lockTimeoutMs: opts.lockTimeoutMs ?? 30_000,
      requestRecheckMs: opts.requestRecheckMs ?? 10_000,
    };
  }

  /** Rebuild the slot map from ZooKeeper (the launcher's node cache is filled by now). */
  async start(): Promise<void> {
    this.initDone ??= this.init();
    await this.initDone;
    this.ctx.nodeCache.on('change', this.onCacheChange);
    this.schedule(0);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.abort.abort();
    this.ctx.nodeCache.off('change', this.onCacheChange);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const p of this.waiting.values()) p.reject(new MetastaticError('ESTOPPED', `provider ${this.name} is stopping`));
    await this.passing?.catch(() => undefined);
    while (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
  }

  /** A changed config keeps this manager and its slot map (labels' settings apply at once). */
  reconfigure(config: MetastaticProvider): boolean {
    this.config = config;
    this.schedule(0);
    return true;
  }

  // ------------------------------------------------------------------ slots

  /**
   * Give node `nodeId` a slot on a backing node of `label`: a free slot of an existing backing node
   * (or of one being requested), else a new backing request. Resolves once the backing node is
   * ours, with it (a fresh copy) and the slot; rejects with MetastaticError when the backing
   * request fails, `timeoutMs` passes or the backing node went away (the slot is freed then).
   */
  async allocate(label: MetastaticPoolLabel, nodeId: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<{ backing: Node; slot: number }> {
    if (this.stopped) throw new MetastaticError('ESTOPPED', `provider ${this.name} is stopping`);
    await (this.initDone ??= this.init());
    // (no await from here to the allocation: the choice and the allocation are one step)
    this.deallocateInner(nodeId);
    const list = this.recordsOf(label.name);
    let record = list.find((r) => r.hasAvailableSlot());
    if (record === undefined) {
      record = new BackingNodeRecord(label.name, label.maxParallelJobs, nowSeconds());
      list.push(record);
      this.requestBackingNode(record, label);
    }
    const slot = record.allocate(nodeId);
    this.log.info({ node: nodeId, backingNode: record.nodeId, request: record.requestId, slot },
      `Assigned node ${nodeId} to backing node ${record.nodeId ?? 'being requested'} slot ${slot}`);
    try {
      await this.waitForBacking(record, label, opts);
      const backingId = record.nodeId;
      const backing = backingId === null ? null
        : this.ctx.nodeCache.current(backingId) ?? await this.ctx.zk.getNode(backingId);
      if (backingId === null || backing === null || backing === undefined || !ALIVE.has(backing.state) || record.gone) {
        throw new MetastaticError('EBACKINGGONE', `backing node ${backingId ?? '?'} of node ${nodeId} is gone`, { node: nodeId });
      }
      return { backing: cloneNode(backing), slot };
    } catch (err) {
      this.deallocate(nodeId);
      throw err;
    }
  }

  /** Free the slot of `nodeId` (a deleted node, a failed launch attempt); no-op when it has none. */
  deallocate(nodeId: string): void {
    if (this.deallocateInner(nodeId)) this.schedule(0);
  }

  /**
   * A node's host-key scan failed (`host-key-checking`): its backing node takes no more nodes
   * (written in its `user_data`, as Nodepool does) and goes once the others finished.
   */
  async nodescanFailed(nodeId: string): Promise<void> {
    const r = this.recordBacking(nodeId);
    if (r === undefined || r.nodeId === null) return;
    this.log.info({ node: nodeId, backingNode: r.nodeId }, `Nodescan failure of ${nodeId} on ${r.nodeId}, failing backing node`);
    r.failed = true;
    await this.writeUserData(r);
  }

  // ------------------------------------------------------------------ launcher hooks

  /** A node of this provider was deleted: its slot is free. */
  async nodeDeleted(node: Node): Promise<void> {
    if (node.provider !== this.name || node.id === null) return;
    this.deallocate(node.id);
  }

  /**
   * Last check before a READY node is handed out (the caller holds its lock): a node whose backing
   * node went away is never handed out; it is marked `deleting` instead.
   */
  async checkReusableNode(node: Node): Promise<boolean> {
    if (node.provider !== this.name || node.id === null) return true;
    const s = slotOf(node);
    if (s === null) return true;
    const r = this.recordOfBackingNode(s.backingNode);
    const alive = r !== undefined ? !r.gone : await this.backingAlive(s.backingNode);
    if (alive) return true;
    this.log.warn({ node: node.id, backingNode: s.backingNode }, `Node ${node.id} is not handed out: its backing node ${s.backingNode} is gone`);
    const copy = cloneNode(node);
    copy.state = 'deleting';
    copy.state_time = nowSeconds();
    await this.ctx.storeNode(copy, BY, `backing node ${s.backingNode} is gone`);
    return false;
  }

  /** The cleanup worker's pass: release idle backing nodes, retire nodes of vanished ones. */
  cleanup(): Promise<void> {
    return this.pass();
  }

  describe(): BackingNodeStatus[] {
    const out: BackingNodeStatus[] = [];
    for (const list of this.records.values()) {
      for (const r of list) {
        out.push({
          label: r.label, backingNode: r.nodeId, request: r.requestId, slots: [...r.slots],
          failed: r.failed, gone: r.gone, launched: r.launched, lastUsed: r.lastUsed,
        });
      }
    }
    return out;
  }

  // ------------------------------------------------------------------ start-up

  /**
   * Nodepool's recovery: a node whose `user_data` names us as owner AND whose lock is held by a
   * contender with our identifier is one of our backing nodes (the lock guards against a copied
   * `user_data`); each node of this provider takes the slot its `driver_data` names.
   */
  private async init(): Promise<void> {
    const found = new Map<string, BackingNodeRecord>();
    for (const node of this.ctx.nodeCache.all()) {
      if (node.id === null) continue;
      const u = decodeUserData(node.extra['user_data']);
      if (u === null || u.owner !== this.owner) continue;
      const contenders = await this.ctx.zk.getNodeLockContenders(node.id);
      if (contenders[0] !== this.owner) continue;
      const r = new BackingNodeRecord(u.label, u.slots, nowSeconds());
      r.nodeId = node.id;
      r.failed = u.failed;
      r.launched = u.launched;
      this.recordsOf(u.label).push(r);
      found.set(node.id, r);
      this.log.info({ backingNode: node.id, label: u.label }, `Found backing node ${node.id} for ${u.label}`);
    }
    for (const node of this.ctx.nodeCache.all()) {
      if (node.provider !== this.name || node.id === null) continue;
      const s = slotOf(node);
      const r = s === null ? undefined : found.get(s.backingNode);
      if (s === null || r === undefined) continue;
      try {
        r.allocate(node.id, s.slot);
        this.log.info({ node: node.id, backingNode: s.backingNode, slot: s.slot },
          `Found node ${node.id} assigned to backing node ${s.backingNode} slot ${s.slot}`);
      } catch (err) {
        this.log.error({ node: node.id, err: (err as Error).message }, `Node ${node.id}: ${(err as Error).message}`);
      }
    }
  }

  // ------------------------------------------------------------------ backing requests

  private requestBackingNode(r: BackingNodeRecord, label: MetastaticPoolLabel): void {
    const p = pending();
    this.waiting.set(r, p);
    this.track((async () => {
      try {
        const req = newNodeRequest({
          node_types: [label.backingLabel],
          requestor: this.owner,
          // the keys later Nodepool writes on every request it makes
          extra: { requestor_data: null, event_id: randomUUID().replace(/-/g, ''), created_time: null, tenant_name: null },
        });
        const id = await this.ctx.zk.submitNodeRequest(req, BACKING_REQUEST_PRIORITY);
        r.requestId = id;
        this.log.info({ request: id, label: label.name, backingLabel: label.backingLabel },
          `Requested backing node of label ${label.backingLabel} for ${label.name}: request ${id}`);
        await this.awaitBackingRequest(r, id);
        p.resolve();
      } catch (err) {
        r.failed = true;
        this.removeRecord(r);
        this.log.error({ request: r.requestId, err: (err as Error).message }, `Backing request ${r.requestId ?? '(not created)'} failed: ${(err as Error).message}`);
        // a requestor deletes its request whatever the outcome (Zuul does; Nodepool leaves a failed one)
        if (r.requestId !== null) await this.ctx.zk.deleteNodeRequest(r.requestId).catch(() => undefined);
        p.reject(err instanceof MetastaticError ? err
          : new MetastaticError('EBACKINGREQUEST', `backing request for ${label.name} failed: ${(err as Error).message}`));
      } finally {
        this.waiting.delete(r);
      }
    })());
  }

  /** Follow our backing request until it is fulfilled (take the node) or failed/gone (throw). */
  private async awaitBackingRequest(r: BackingNodeRecord, id: string): Promise<void> {
    const zk = this.ctx.zk;
    for (;;) {
      if (this.stopped) throw new MetastaticError('ESTOPPED', `provider ${this.name} is stopping`);
      let wake!: () => void;
      const changed = new Promise<void>((res) => {
        wake = res;
      });
      let seen: Awaited<ReturnType<ZooKeeper['watchNodeRequest']>>;
      try {
        seen = await zk.watchNodeRequest(id, () => wake());
      } catch (err) {
        if (!isRetryable(err)) throw err;
        await zk.waitConnected(zk.sessionTimeout).catch(() => false);
        continue;
      }
      const req = seen.request;
      if (seen.gone) throw new MetastaticError('EBACKINGREQUEST', `backing request ${id} disappeared`, { request: id });
      if (req?.state === 'failed') {
        await zk.deleteNodeRequest(id).catch(() => undefined);
        throw new MetastaticError('EBACKINGREQUEST', `backing request ${id} failed (declined by ${req.declined_by.join(', ') || 'every launcher'})`, { request: id });
      }
      if (req?.state === 'fulfilled') {
        const nodeId = req.nodes[0];
        if (nodeId === undefined) throw new MetastaticError('EBACKINGREQUEST', `backing request ${id} was fulfilled without a node`, { request: id });
        this.log.info({ request: id, backingNode: nodeId }, `Backing request ${id} fulfilled with node id ${nodeId}`);
        if (await this.takeBackingNode(r, nodeId, id)) return;
      }
      await Promise.race([changed, sleep(this.opts.requestRecheckMs, this.abort.signal)]);
    }
  }

  /**
   * Lock the node a backing request was fulfilled with (persistent, with our identifier), record
   * our `user_data`, mark it `in-use` and delete the request. False when the lock was not had in
   * time (the request stays fulfilled and is looked at again).
   */
  private async takeBackingNode(r: BackingNodeRecord, nodeId: string, requestId: string): Promise<boolean> {
    const zk = this.ctx.zk;
    let locked: boolean;
    try {
      locked = await zk.lockNodePersistent(nodeId, this.owner, { blocking: true, timeoutMs: this.opts.lockTimeoutMs });
    } catch (err) {
      this.log.warn({ backingNode: nodeId, err: (err as Error).message }, `Could not lock backing node ${nodeId} yet: ${(err as Error).message}`);
      return false;
    }
    if (!locked) return false;
    try {
      const node = await zk.getNode(nodeId);
      if (node === null) {
        throw new MetastaticError('EBACKINGGONE', `backing node ${nodeId} of request ${requestId} is gone`, { request: requestId });
      }
      node.extra['user_data'] = encodeUserData(r.userData(this.owner));
      node.state = 'in-use';
      node.state_time = nowSeconds();
      await this.ctx.storeNode(node, BY, `backing node of ${this.name} for ${r.label}`);
      // (ours from here on: a failure below leaves a request to delete, not a node)
      r.nodeId = nodeId;
    } catch (err) {
      // a node we do not use must not stay locked by us for ever
      await zk.forceUnlockNode(nodeId, this.owner).catch(() => undefined);
      throw err;
    }
    await zk.deleteNodeRequest(requestId).catch((err: unknown) => {
      this.log.warn({ request: requestId, err: (err as Error).message }, `Could not delete backing request ${requestId}: ${(err as Error).message}`);
    });
    r.requestId = null;
    return true;
  }

  private async waitForBacking(r: BackingNodeRecord, label: MetastaticPoolLabel, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    if (r.nodeId !== null) return;
    const p = this.waiting.get(r);
    if (p === undefined) {
      throw new MetastaticError('EBACKINGREQUEST', `the backing request for ${label.name} is no longer pending`);
    }
    let timer: NodeJS.Timeout | null = null;
    let onAbort: (() => void) | null = null;
    try {
      await Promise.race([
        p.promise,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new MetastaticError('EBACKINGTIMEOUT',
            `no backing node of label ${label.backingLabel} within ${Math.round(opts.timeoutMs / 1000)} s`)), opts.timeoutMs);
          onAbort = () => reject(new MetastaticError('ESTOPPED', 'launch aborted'));
          opts.signal?.addEventListener('abort', onAbort, { once: true });
          this.abort.signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      if (timer) clearTimeout(timer);
      if (onAbort) {
        opts.signal?.removeEventListener('abort', onAbort);
        this.abort.signal.removeEventListener('abort', onAbort);
      }
    }
  }

  // ------------------------------------------------------------------ the pass

  /** Run a pass after `delayMs` (sooner if one is scheduled sooner already). */
  private schedule(delayMs: number): void {
    if (this.stopped) return;
    const at = Date.now() + Math.max(0, delayMs);
    if (this.timer !== null && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      void this.pass().catch((err: unknown) => {
        this.log.error({ err: (err as Error).message }, `Metastatic pass of ${this.name} failed: ${(err as Error).message}`);
      });
    }, Math.max(0, delayMs));
    this.timer.unref();
  }

  /** One pass at a time; a pass asked for while one runs follows it. */
  private pass(): Promise<void> {
    if (this.passing) {
      this.passAgain = true;
      return this.passing;
    }
    this.passing = (async () => {
      try {
        do {
          this.passAgain = false;
          await this.passOnce();
        } while (this.passAgain && !this.stopped);
      } finally {
        this.passing = null;
      }
    })();
    return this.passing;
  }

  private async passOnce(): Promise<void> {
    if (this.stopped || this.ctx.zk.state !== 'connected') {
      this.schedule(this.opts.sweepIntervalMs);
      return;
    }
    let wakeAt = Infinity;
    for (const [labelName, list] of this.records) {
      const label = this.labelConfig(labelName);
      for (const r of [...list]) {
        if (r.nodeId !== null && !r.gone && !(await this.backingAlive(r.nodeId))) {
          r.gone = true;
          r.failed = true;
          this.log.warn({ backingNode: r.nodeId, label: labelName },
            `Backing node ${r.nodeId} of ${labelName} is gone; its nodes are not handed out any more`);
        }
        if (r.gone) await this.retireFreeNodes(r);
        await this.freeVanishedSlots(r);
        const d = releaseDecision(r, label, nowSeconds());
        if (d.release) await this.release(r, d.reason);
        else if (d.wakeAt !== null) wakeAt = Math.min(wakeAt, d.wakeAt);
      }
    }
    await this.retireOrphans();
    const untilWake = wakeAt === Infinity ? Infinity : Math.ceil((wakeAt - nowSeconds()) * 1000) + 10;
    this.schedule(Math.min(this.opts.sweepIntervalMs, Math.max(10, untilWake)));
  }

  /**
   * Release an idle backing node: out of service first (nothing is allocated to it from here on),
   * then `used` (its provider deletes it) and our lock removed. Kept for the next pass when
   * ZooKeeper fails meanwhile.
   */
  private async release(r: BackingNodeRecord, reason: string): Promise<void> {
    r.failed = true;
    const id = r.nodeId;
    if (id === null) {
      this.removeRecord(r);
      return;
    }
    this.log.info({ backingNode: id, label: r.label }, `Releasing backing node ${id}: ${reason}`);
    try {
      const node = await this.ctx.zk.getNode(id);
      if (node !== null && node.state === 'in-use') {
        node.state = 'used';
        node.state_time = nowSeconds();
        await this.ctx.storeNode(node, BY, `backing node released: ${reason}`);
      }
      await this.ctx.zk.forceUnlockNode(id, this.owner);
      this.removeRecord(r);
    } catch (err) {
      this.log.warn({ backingNode: id, err: (err as Error).message }, `Could not release backing node ${id} yet: ${(err as Error).message}`);
    }
  }

  /** READY, unallocated nodes of a vanished backing node go (`deleting`); busy ones finish first. */
  private async retireFreeNodes(r: BackingNodeRecord): Promise<void> {
    for (const id of r.slots) {
      if (id === null) continue;
      const n = this.ctx.nodeCache.get(id);
      if (n === undefined || n.state !== 'ready' || n.allocated_to !== null) continue;
      await this.retireNode(n, `its backing node ${r.nodeId ?? '?'} is gone`);
    }
  }

  /**
   * READY, unallocated nodes of this provider whose backing node is not one of ours and no longer
   * alive (it went away while no launcher looked after it): they go too.
   */
  private async retireOrphans(): Promise<void> {
    for (const n of this.ctx.nodeCache.all()) {
      if (n.provider !== this.name || n.state !== 'ready' || n.allocated_to !== null || n.id === null) continue;
      const s = slotOf(n);
      if (s === null || this.recordOfBackingNode(s.backingNode) !== undefined) continue;
      if (await this.backingAlive(s.backingNode)) continue;
      await this.retireNode(n, `its backing node ${s.backingNode} is gone`);
    }
  }

  private async retireNode(n: Readonly<Node>, reason: string): Promise<void> {
    const zk = this.ctx.zk;
    const ref = cloneNode(n);
    if (!(await zk.lockNode(ref, { blocking: false }).catch(() => false))) return;
    try {
      const fresh = ref.id === null ? null : await zk.getNode(ref.id);
      if (fresh === null || fresh.state !== 'ready' || fresh.allocated_to !== null) return;
      fresh.state = 'deleting';
      fresh.state_time = nowSeconds();
      await this.ctx.storeNode(fresh, BY, reason);
      this.log.warn({ node: fresh.id }, `Deleting node ${fresh.id}: ${reason}`);
    } finally {
      await zk.unlockNode(ref).catch(() => undefined);
    }
  }

  /** Slots of nodes that no longer exist (deleted by another process, `nodepool delete --now`). */
  private async freeVanishedSlots(r: BackingNodeRecord): Promise<void> {
    for (const id of [...r.slots]) {
      if (id === null || this.ctx.nodeCache.has(id)) continue;
      if ((await this.ctx.zk.getNodeData(id)) !== null) continue;
      const slot = r.deallocate(id, nowSeconds());
      if (slot >= 0) this.log.info({ node: id, backingNode: r.nodeId, slot }, `Unassigned vanished node ${id} from backing node ${r.nodeId ?? '?'} slot ${slot}`);
    }
  }

  // ------------------------------------------------------------------ helpers

  /** Whether a backing node exists and still carries nodes (`in-use`, or held by an operator). */
  private async backingAlive(id: string): Promise<boolean> {
    const cached = this.ctx.nodeCache.get(id);
    if (cached !== undefined && ALIVE.has(cached.state)) return true;
    // (the cache may lag our own writes: ZooKeeper decides)
    const node = await this.ctx.zk.getNode(id);
    return node !== null && ALIVE.has(node.state);
  }

  private async writeUserData(r: BackingNodeRecord): Promise<void> {
    if (r.nodeId === null) return;
    const node = await this.ctx.zk.getNode(r.nodeId);
    if (node === null) return;
    node.extra['user_data'] = encodeUserData(r.userData(this.owner));
    await this.ctx.storeNode(node, BY, r.failed ? 'backing node failed' : 'backing node updated');
  }

  private deallocateInner(nodeId: string): boolean {
    for (const list of this.records.values()) {
      for (const r of list) {
        const slot = r.deallocate(nodeId, nowSeconds());
        if (slot >= 0) {
          this.log.info({ node: nodeId, backingNode: r.nodeId, slot }, `Unassigned node ${nodeId} from backing node ${r.nodeId ?? '?'} slot ${slot}`);
          return true;
        }
      }
    }
    return false;
  }

  private recordsOf(label: string): BackingNodeRecord[] {
    let list = this.records.get(label);
    if (list === undefined) {
      list = [];
      this.records.set(label, list);
    }
    return list;
  }

  private removeRecord(r: BackingNodeRecord): void {
    const list = this.records.get(r.label);
    if (list === undefined) return;
    const i = list.indexOf(r);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.records.delete(r.label);
  }

  private recordBacking(nodeId: string): BackingNodeRecord | undefined {
    for (const list of this.records.values()) for (const r of list) if (r.backs(nodeId)) return r;
    return undefined;
  }

  private recordOfBackingNode(backingId: string): BackingNodeRecord | undefined {
    for (const list of this.records.values()) for (const r of list) if (r.nodeId === backingId) return r;
    return undefined;
  }

  private isBackingNode(id: string): boolean {
    return this.recordOfBackingNode(id) !== undefined;
  }

  private labelConfig(name: string): MetastaticPoolLabel | undefined {
    for (const pool of this.config.pools) {
      const l = pool.labels.find((x) => x.name === name);
      if (l !== undefined) return l;
    }
    return undefined;
  }

  private track<T>(p: Promise<T>): void {
    this.tasks.add(p);
    void p.finally(() => this.tasks.delete(p)).catch(() => undefined);
  }
}

export function createMetastaticProvider(provider: MetastaticProvider, ctx: MetastaticDriverContext,
  opts: MetastaticManagerOptions = {}): MetastaticManager {
  return new MetastaticManager(provider, ctx, opts);
}
