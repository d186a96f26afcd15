// NodeRequestHandler: serves one locked node request for one provider pool (§3.4). The decision
// is `planRequest` (pure); this class performs the I/O the plan names and finishes the request
// when every node it holds is ready (fulfilled), failed (declined) or aborted (paused, relaunch).
import type { Node, NodeRequest } from '@nodepool-ts/core/model';
import { newNode } from '@nodepool-ts/core/model';
import { MIN_READY_REQUESTOR, planRequest, neededLabels, setTenant, tenantOf, type Step } from './decide.js';
import type { PoolWorker } from './pool-worker.js';
import { retryConnectionLoss } from './zk-retry.js';

interface Held {
  label: string;
  node: Node;
  launch: Promise<'ready' | 'failed' | 'aborted'> | null;
  settled: boolean;
  /** a claimed READY node whose allocation is not written yet (see finishFromReady) */
  unwritten?: boolean;
}

export type HandlerState = 'running' | 'paused' | 'launching' | 'done';

/** Our request lock died with a ZooKeeper session: the request is no longer ours to write. */
export class RequestLockLostError extends Error {
  readonly code = 'ELOCKLOST';
  constructor(readonly request: string) {
    super(`lost the lock of node request ${request} with its ZooKeeper session`);
    this.name = 'RequestLockLostError';
  }
}

export class NodeRequestHandler {
  state: HandlerState = 'running';
  private held: Held[] = [];
  private exclude = new Set<string>();
  private finishing = false;
  private az: string | null = null;
  readonly startedAt = Date.now();
  /** after a cloud "quota exceeded", wait before launching again (backoff, ms epoch) */
  retryAt = 0;
  private aborts = 0;

  constructor(private readonly worker: PoolWorker, readonly request: NodeRequest) {}

  get id(): string {
    return this.request.id ?? '';
  }

  private get log() {
    return this.worker.log.child({ request: this.id });
  }

  /** Run (or re-run, when paused) the plan. Never throws: errors decline the request. */
  async run(): Promise<void> {
    try {
      await this.runInner();
    } catch (err) {
      if (err instanceof RequestLockLostError || this.lockLost) {
        await this.dropLost();
        return;
      }
      this.log.error({ err: (err as Error).message }, `Declining node request ${this.id} due to exception`);
      await this.decline(`exception: ${(err as Error).message}`, true).catch((e: unknown) => this.giveUp(e));
    }
  }

  /**
   * Declining failed too: let go of everything, the request lock above all. Kept, it would
   * outlive the handler for the life of the session and nobody could answer the request; let
   * go, another launcher (or the lost-request cleanup, for a `pending` one) takes it.
   */
  private async giveUp(err: unknown): Promise<void> {
    if (this.state === 'done') return;
    this.log.error({ err: (err as Error).message }, `could not decline request ${this.id}; releasing it`);
    await this.releaseNodes(true).catch(() => undefined);
    await this.done();
  }

  /**
   * The request lock died with a ZooKeeper session (an expiry): another launcher may own the
   * request now, and the locks of the nodes we held died in the same session. Checked right
   * before each write, in the tick the write is issued, so nothing of ours lands in a new session.
   */
  get lockLost(): boolean {
    return !this.worker.zk.holdsLock(this.request);
  }

  /** For writes repeated across a connection loss: the request lock is still ours. */
  private readonly ours = (): boolean => !this.lockLost;

  private guard(): void {
    if (this.lockLost) throw new RequestLockLostError(this.id);
  }

  /** Forget the request without writing anything: its new owner (or Zuul) decides. */
  private async dropLost(): Promise<void> {
    if (this.state === 'done') return;
    this.log.warn(`Lost the lock of node request ${this.id} with the ZooKeeper session; leaving it to whoever holds it now`);
    this.held = [];
    this.state = 'done';
    this.worker.handlerDone(this);
  }

  private async runInner(): Promise<void> {
    if (this.state === 'done') return;
    this.guard();
    const w = this.worker;
    if (this.request.node_types.length === 0) {
      await this.decline('request has no node_types', true, true);
      return;
    }
    if (this.az === null) this.az = await w.chooseAz();
    for (let round = 0; round < 20; round++) {
      // Planning and node creation are serialised across this worker's handlers (quota); claiming
      // ready nodes is not (node locks decide), so a warm request never waits on another's claim.
      const outcome = await w.exclusive(async () => {
        // While another request waits for capacity the pool takes no new one (as Nodepool's
        // paused pool): one started in the same pass gives its request back untouched, so the
        // requests behind stay `requested` (Zuul may still revise them) and are served in order.
        const fresh = this.request.state === 'requested' && this.held.length === 0;
        if (fresh && w.hasPausedOther(this)) return { kind: 'yield' } as const;
        const input = await w.planInput(this.request, this.exclude, this.held.map((h) => h.label));
        // (read, planned and reserved in one tick: pools of one provider share its breaker)
        const circuit = w.launchCircuit();
        if (circuit !== null) {
          input.launchAllowance = circuit.launchAllowance();
          input.launchRefusal = circuit.refusal();
        }
        const plan = planRequest(input);
        const waits = plan.kind !== 'decline' && plan.steps.some((st) => st.action === 'wait');
        // (handlers started together plan in any order; the first in request order waits)
        if (fresh && waits && w.earlierUnplanned(this.request)) return { kind: 'yield' } as const;
        w.handlerPlanned(this);
        if (plan.kind === 'decline') return { kind: 'decline', reason: plan.reason } as const;
        circuit?.launchesStarted(plan.steps.filter((st) => st.action === 'launch').length);
        w.handlerWaiting(this, waits);
        const reuse = plan.steps.filter((st) => st.action === 'reuse');
        for (const st of reuse) if (st.node.id !== null) w.claiming.add(st.node.id);
        const created = await this.createNodes(plan.steps);
        return {
          kind: 'proceed',
          reuse,
          created,
          waiting: plan.steps.some((st) => st.action === 'wait'),
          launching: created.length > 0,
        } as const;
      });
      if (outcome.kind === 'yield') {
        await this.giveBack();
        return;
      }
      let redo = false;
      if (outcome.kind === 'proceed') {
        try {
          // Served from READY nodes alone: their allocations are written with the fulfilment.
          const deferWrites = outcome.created.length === 0 && !outcome.waiting && this.request.requestor !== MIN_READY_REQUESTOR;
          redo = await this.claim(outcome.reuse, deferWrites);
        } finally {
          for (const st of outcome.reuse) if (st.node.id !== null) w.claiming.delete(st.node.id);
        }
        await this.startLaunches(outcome.created);
      }
      if (outcome.kind === 'decline') {
        await this.decline(outcome.reason, true);
        return;
      }
      // `pending` tells other launchers (and lost-request cleanup) that work is under way; a
      // request served at once from ready nodes goes straight to `fulfilled`.
      if (this.request.state !== 'pending' && (outcome.waiting || outcome.launching || redo)) {
        this.request.state = 'pending';
        this.request.state_time = Date.now() / 1000;
        this.guard();
        await w.storeRequest(this.request, 'accepted', this.ours);
      }
      if (redo) continue;
      if (outcome.waiting) {
        if (this.state !== 'paused') {
          this.log.info(`Pausing request handling to satisfy request ${this.id}`);
        }
        this.pause();
        await w.avoidWedge();
        return;
      }
      this.state = 'launching';
      await this.maybeFinish();
      return;
    }
    this.pause();
  }

  private pause(): void {
    this.state = 'paused';
    this.worker.handlerPaused(this);
  }

  /** Claim the planned READY nodes; true when one slipped away and the plan must be recomputed. */
  private async claim(steps: Step[], deferWrites: boolean): Promise<boolean> {
    const w = this.worker;
    for (const step of steps) {
      if (step.action !== 'reuse') continue;
      const got = await w.claimReadyNode(step.node, { id: this.id, tenant: tenantOf(this.request) }, () => this.guard(), deferWrites);
      if (!got) {
        if (step.node.id !== null) this.exclude.add(step.node.id);
        return true;
      }
      this.held.push({ label: step.label, node: got, launch: null, settled: true, unwritten: deferWrites });
      if (this.az === null && got.az !== null) this.az = got.az;
    }
    return false;
  }

  /** Create the `init` node znodes of the planned launches (inside the planning section). */
  private async createNodes(steps: Step[]): Promise<{ label: string; node: Node }[]> {
    const w = this.worker;
    const out: { label: string; node: Node }[] = [];
    for (const step of steps) {
      if (step.action !== 'launch') continue;
      const node = newNode({
        state: 'init',
        type: [step.label],
        provider: w.providerName,
        pool: w.poolName,
        launcher: w.id,
        allocated_to: this.id,
        attributes: w.nodeAttributes,
        cloud: w.cloudName,
        region: w.regionName,
        az: this.az,
      });
      setTenant(node, tenantOf(this.request));
      this.guard();
      await w.storeNode(node, 'created for request ' + this.id);
      out.push({ label: step.label, node });
    }
    return out;
  }

  /** Lock each new node, mark it `building` and boot it. */
  private async startLaunches(created: { label: string; node: Node }[]): Promise<void> {
    const w = this.worker;
    for (const { label, node } of created) {
      if (!(await w.zk.lockNode(node, { blocking: false }))) {
        // Nodepool stores init unlocked then locks; someone else locking it first is a bug
        // elsewhere: fail it so the DeletedNodeWorker reaps it (init nodes are never reaped).
        node.state = 'failed';
        await w.storeNode(node, 'could not lock new node');
        continue;
      }
      node.state = 'building';
      node.state_time = Date.now() / 1000;
      if (this.lockLost) {
        // The new node is ours alone (created and locked in this session): hand it to the
        // DeletedNodeWorker rather than leave an `init` node nobody reaps.
        node.state = 'failed';
        await w.storeNode(node, 'request lock lost before launch');
        await w.zk.unlockNode(node).catch(() => undefined);
        this.guard();
      }
      try {
        await w.storeNode(node, 'building', () => w.zk.holdsLock(node));
      } catch (err) {
        // unlocked, the `init` node is reaped by the DeletedNodeWorker; locked, it stayed forever
        await w.zk.unlockNode(node).catch(() => undefined);
        throw err;
      }
      const held: Held = { label, node, launch: null, settled: false };
      held.launch = w.launch(node, label, this.az, this.request).finally(() => {
        held.settled = true;
        void this.maybeFinish();
      });
      this.held.push(held);
    }
  }

  /** Called on every launch completion and when the request changes. */
  async maybeFinish(): Promise<void> {
    if (this.state === 'done' || this.state === 'paused' || this.finishing) return;
    if (this.held.some((h) => h.launch !== null && !h.settled)) return;
    if (neededLabels(this.request.node_types, this.held.map((h) => h.label)).length > 0) return;
    this.finishing = true;
    try {
      await this.finish();
    } catch (err) {
      if (err instanceof RequestLockLostError || this.lockLost) {
        await this.dropLost();
        return;
      }
      this.log.error({ err: (err as Error).message }, `error finishing request ${this.id}`);
      await this.decline(`exception: ${(err as Error).message}`, false).catch((e: unknown) => this.giveUp(e));
    } finally {
      this.finishing = false;
    }
  }

  private async finish(): Promise<void> {
    const w = this.worker;
    // We hold the request lock: nobody but the requestor (deleting it) changes it meanwhile.
    const current = w.ctx.requestCache.get(this.id) === undefined && (await w.zk.getNodeRequest(this.id)) === null
      ? null : this.request;
    if (current === null) {
      this.log.info(`Node request ${this.id} disappeared`);
      await this.releaseNodes(true);
      await this.done();
      return;
    }
    const failed = this.held.filter((h) => h.node.state !== 'ready' && h.node.state !== 'aborted');
    const aborted = this.held.filter((h) => h.node.state === 'aborted');
    if (failed.length > 0) {
      await this.decline(`${failed.length} node(s) failed to launch`, false);
      return;
    }
    if (aborted.length > 0) {
      for (const h of aborted) await w.zk.unlockNode(h.node).catch(() => undefined);
      this.held = this.held.filter((h) => h.node.state !== 'aborted');
      this.aborts++;
      this.retryAt = Date.now() + Math.min(30_000, 500 * 2 ** Math.min(this.aborts - 1, 6));
      this.pause();
      this.log.info({ retryMs: this.retryAt - Date.now(), aborts: this.aborts },
        `Pausing request ${this.id}: ${aborted.length} node launch(es) aborted by cloud quota; retrying in ${this.retryAt - Date.now()} ms`);
      return;
    }
    // Fulfil: each label takes the first held node of that label, in node_types order.
    const pool = [...this.held];
    const ids: string[] = [];
    for (const label of this.request.node_types) {
      const i = pool.findIndex((h) => h.label === label);
      const h = pool.splice(i, 1)[0];
      if (i < 0 || h === undefined || h.node.id === null) throw new Error(`no node held for label ${label}`);
      ids.push(h.node.id);
    }
    current.nodes = ids;
    current.state = 'fulfilled';
    current.state_time = Date.now() / 1000;
    this.guard();
    if (current.requestor === MIN_READY_REQUESTOR) {
      await this.finishMinReady(current);
      return;
    }
    if (await this.finishFromReady(current)) return;
    await this.writeAllocations();
    // Nodes keep allocated_to; Zuul locks them once it sees `fulfilled` (waiting on our lock if
    // it is quicker than our unlock), so both writes go out together.
    await Promise.all([this.releaseNodes(false), w.storeRequest(current, `fulfilled in ${Date.now() - this.startedAt} ms`, this.ours)]);
    this.log.info(`Fulfilled node request ${this.id}`);
    await this.done();
  }

  /**
   * A request served from READY nodes alone: the nodes' allocations, the request's `fulfilled`
   * and the release of every lock go in one multi. Zuul sees the request fulfilled with its nodes
   * allocated and unlocked at once, as after Nodepool's separate writes, three round trips
   * sooner. False when the multi was not applied (the caller writes one by one).
   */
  private async finishFromReady(req: NodeRequest): Promise<boolean> {
    const w = this.worker;
    if (this.held.length === 0 || this.held.some((h) => h.launch !== null)) return false;
    const nodes = this.held.map((h) => h.node);
    const unwritten = this.held.filter((h) => h.unwritten).map((h) => h.node);
    this.guard();
    // Recorded in the reply's own turn: Zuul may delete the request at once, and its removal,
    // seen through the watch, must follow the fulfilment in the history.
    const record = (): void => {
      for (const n of unwritten) w.ctx.recordNode(n, w.id, `allocated to ${this.id}`);
      w.ctx.recordRequest(req, w.id, `fulfilled in ${Date.now() - this.startedAt} ms`);
    };
    if (!(await w.zk.storeAndRelease(unwritten, [req], [...nodes, req], record))) return false;
    this.log.info(`Fulfilled node request ${this.id}`);
    this.held = [];
    this.state = 'done';
    this.worker.handlerDone(this);
    return true;
  }

  /** Claimed nodes whose allocation was deferred get it written now (the one-by-one path). */
  private async writeAllocations(): Promise<void> {
    const w = this.worker;
    for (const h of this.held) {
      if (!h.unwritten) continue;
      this.guard();
      await w.storeNode(h.node, `allocated to ${this.id}`, () => w.zk.holdsLock(h.node));
      h.unwritten = false;
    }
  }

  /**
   * A min-ready request (§3.8) exists only to have nodes launched for the pool: nobody but the
   * MinReady worker reads its `fulfilled`, and that worker's answer is to clear the nodes'
   * allocation and delete the request. Done here at once instead: the launches cleared the
   * allocation in their `ready` write (under the node lock), and the request goes with its lock
   * directory. The nodes join the pool a pass sooner, and five writes and their watch reads are
   * saved per node.
   */
  private async finishMinReady(req: NodeRequest): Promise<void> {
    const w = this.worker;
    await Promise.all(this.held.map(async (h) => {
      if (h.node.allocated_to !== null) {
        this.guard();
        h.node.allocated_to = null;
        await w.storeNode(h.node, 'min-ready node released to the pool');
      }
      await w.zk.unlockNode(h.node).catch(() => undefined);
    }));
    this.held = [];
    this.guard();
    // recorded before the request goes: its removal, seen through the watch, follows it
    w.ctx.recordRequest(req, w.id, `fulfilled in ${Date.now() - this.startedAt} ms; min-ready nodes released to the pool`);
    await w.zk.deleteLockedRequest(req);
    w.ctx.minReadyDone?.(this.id);
    this.log.info(`Fulfilled min-ready node request ${this.id}`);
    this.state = 'done';
    this.worker.handlerDone(this);
  }

  /** The request znode vanished (Zuul cancelled, or its session died). */
  async requestGone(): Promise<void> {
    if (this.state === 'done') return;
    if (this.held.some((h) => h.launch !== null && !h.settled)) return; // finish() will notice
    this.log.info(`Node request ${this.id} disappeared; releasing its nodes`);
    await this.releaseNodes(true);
    await this.done();
  }

  /**
   * The launcher is stopping: give the request back untouched (state `requested`, not declined)
   * so another launcher, or this one after a restart, serves it.
   */
  async abandon(): Promise<void> {
    if (this.state === 'done') return;
    if (this.lockLost) return this.dropLost();
    const w = this.worker;
    await this.releaseNodes(true);
    const current = await w.zk.getNodeRequest(this.id);
    if (this.lockLost) return this.dropLost();
    if (current !== null && current.state === 'pending') {
      current.state = 'requested';
      current.nodes = [];
      current.state_time = Date.now() / 1000;
      await w.storeRequest(current, 'launcher stopping; request handed back', this.ours);
    }
    await this.done();
  }

  async decline(reason: string, clearAllocation: boolean, invalid = false): Promise<void> {
    const w = this.worker;
    if (this.lockLost) return this.dropLost();
    this.log.info({ reason }, `Declining node request ${this.id}: ${reason}`);
    await this.releaseNodes(clearAllocation);
    const current = await retryConnectionLoss(w.zk, () => w.zk.getNodeRequest(this.id), this.ours);
    if (current !== null) {
      if (!current.declined_by.includes(w.id)) current.declined_by.push(w.id);
      const launchers = await w.registeredLauncherIds();
      const allDeclined = invalid || launchers.every((id) => current.declined_by.includes(id));
      current.state = allDeclined ? 'failed' : 'requested';
      current.nodes = [];
      current.state_time = Date.now() / 1000;
      if (this.lockLost) return this.dropLost();
      await w.storeRequest(current, allDeclined ? `failed: ${reason}` : `declined: ${reason}`, this.ours);
    }
    await this.done();
  }

  private async releaseNodes(clearAllocation: boolean): Promise<void> {
    const w = this.worker;
    await Promise.all(this.held.map(async (h) => {
      // (an allocation never written needs no clearing)
      if (clearAllocation && !h.unwritten && h.node.allocated_to === this.id && h.node.state !== 'deleted' && w.zk.holdsLock(h.node)) {
        const fresh = h.node.id !== null ? await w.zk.getNode(h.node.id) : null;
        // (the node lock is checked again: it dies with the session, and the write follows at once)
        if (fresh !== null && w.zk.holdsLock(h.node)) {
          fresh.allocated_to = null;
          await w.storeNode(fresh, 'allocation released');
          h.node.allocated_to = null;
        }
      }
      await w.zk.unlockNode(h.node).catch(() => undefined);
    }));
    this.held = [];
  }

  /** Unlock the request without having written anything: it stays `requested` for a later pass. */
  private async giveBack(): Promise<void> {
    this.state = 'done';
    await this.worker.zk.unlockNodeRequest(this.request, { missingOk: true }).catch(() => undefined);
    this.worker.handlerGaveBack(this);
  }

  private async done(): Promise<void> {
    this.state = 'done';
    // (a request fulfilled in one multi released its lock there)
    await this.worker.zk.unlockNodeRequest(this.request, { missingOk: true }).catch(() => undefined);
    this.worker.handlerDone(this);
  }
}
