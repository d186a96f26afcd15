// Leases: nodes handed to a person or a script through the web API, for a limited time.
//
// A lease is an ordinary node request, taken exactly the way Zuul takes one (§1.6): submit the
// request (ephemeral, priority 200) so min-ready, quotas and every provider apply; when it is
// fulfilled, lock every node (blocking, 30 s), delete the request and mark the nodes `in-use`.
// Returning a lease marks its nodes `used` and unlocks them; the DeletedNodeWorker then deletes
// the servers (and the static driver registers its hosts again).
//
// Node locks belong to a ZooKeeper session, so the launcher process that served the POST holds
// the lease (`owner` = its hostname). The lease row in the database is what survives that
// process:
// * graceful stop: the nodes are put on `hold` (comment `nodepool-ts lease <id>`, hold_expiration =
//   the lease's remaining time) and unlocked, so no launcher reaps them; the next start with the
//   same hostname re-locks them and puts them back `in-use`;
// * crash: the old session keeps its locks until ZooKeeper expires it (about 10 s). A restarted
//   launcher queues a blocking lock on every node at once and so gets each lock the moment the
//   old session dies, before any DeletedNodeWorker can; a launcher that stays down longer loses
//   the nodes (unlocked in-use nodes are deleted, as they are when Zuul crashes) and the lease
//   becomes `lost`;
// * pending leases: their request died with the session; the restarted launcher submits a new one.
// Expired leases are returned by their owner; one whose owner is gone is returned by any launcher
// that can take the node locks.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { newNode, newNodeRequest, type Node, type NodeRequest } from '@nodepool-ts/core/model';
import type { Logger } from '@nodepool-ts/core/log';
import type { NodeCache, RequestCache, ZooKeeper } from '@nodepool-ts/core/zk';
import { paths } from '@nodepool-ts/core/zk';
import type { LauncherEvents } from '../events.js';
import { ApiError } from './errors.js';

export const LEASE_REQUESTOR = 'nodepool-ts:lease-api';
export const LEASE_PRIORITY = '200';
/** Zuul waits this long for each node lock when it accepts a request. */
const NODE_LOCK_TIMEOUT_MS = 30_000;
const ACCEPT_ATTEMPTS = 3;

export type LeaseState =
  | 'pending' | 'active' | 'releasing' | 'returned' | 'expired' | 'cancelled' | 'failed' | 'lost';
export const OPEN_STATES: readonly LeaseState[] = ['pending', 'active', 'releasing'];

/** What a lease hands out per node: how to reach it, never any credential. */
export interface LeaseNode {
  id: string;
  label: string | null;
  state: string | null;
  provider: string | null;
  az: string | null;
  hostname: string | null;
  interface_ip: string | null;
  public_ipv4: string | null;
  private_ipv4: string | null;
  public_ipv6: string | null;
  username: string | null;
  connection_type: string | null;
  connection_port: number | null;
  host_keys: string[];
}

export interface Lease {
  id: string;
  tokenId: string;
  tokenName: string;
  state: LeaseState;
  labels: Record<string, number>;
  nodeCount: number;
  requestId: string | null;
  nodeIds: string[];
  nodes: LeaseNode[];
  owner: string;
  ttl: number;
  comment: string | null;
  createdAt: number;
  fulfilledAt: number | null;
  expiresAt: number;
  endedAt: number | null;
  error: string | null;
}

export interface LeaseLimits {
  /** shortest and longest lifetime a client may ask for (seconds) */
  minTtl: number;
  maxTtl: number;
  defaultTtl: number;
  /** nodes in one lease */
  maxNodesPerLease: number;
  /** nodes one token may hold at once (pending + active leases); a token may override it */
  maxNodesPerToken: number;
  /** longest `wait` a POST may ask for (seconds) */
  maxWait: number;
  /** mutating requests per token: bucket size and refill per minute */
  rateBurst: number;
  ratePerMinute: number;
  /** how often expiry and housekeeping run */
  expiryIntervalMs: number;
  /** how long a restarted launcher waits for each node lock of a recovered lease */
  recoveryLockTimeoutMs: number;
}

export const DEFAULT_LEASE_LIMITS: LeaseLimits = {
  minTtl: 60,
  maxTtl: 86_400,
  defaultTtl: 3600,
  maxNodesPerLease: 10,
  maxNodesPerToken: 20,
  maxWait: 300,
  rateBurst: 20,
  ratePerMinute: 60,
  expiryIntervalMs: 5000,
  recoveryLockTimeoutMs: 25_000,
};

function now(): number {
  return Date.now() / 1000;
}

function num(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

function parseJson<T>(text: unknown, fallback: T): T {
  if (typeof text !== 'string' || text === '') return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

function leaseFromRow(r: Record<string, unknown>): Lease {
  return {
    id: String(r.id),
    tokenId: String(r.token_id),
    tokenName: String(r.token_name),
    state: String(r.state) as LeaseState,
    labels: parseJson<Record<string, number>>(r.labels, {}),
    nodeCount: num(r.node_count) ?? 0,
    requestId: r.request_id === null || r.request_id === undefined ? null : String(r.request_id),
    nodeIds: parseJson<string[]>(r.node_ids, []),
    nodes: parseJson<LeaseNode[]>(r.nodes, []),
    owner: String(r.owner),
    ttl: num(r.ttl) ?? 0,
    comment: r.comment === null || r.comment === undefined ? null : String(r.comment),
    createdAt: num(r.created_at) ?? 0,
    fulfilledAt: num(r.fulfilled_at),
    expiresAt: num(r.expires_at) ?? 0,
    endedAt: num(r.ended_at),
    error: r.error === null || r.error === undefined ? null : String(r.error),
  };
}

export function leaseNodeOf(n: Readonly<Node>): LeaseNode {
  return {
    id: n.id ?? '',
    label: n.type[0] ?? null,
    state: n.state,
    provider: n.provider,
    az: n.az,
    hostname: n.hostname,
    interface_ip: n.interface_ip,
    public_ipv4: n.public_ipv4,
    private_ipv4: n.private_ipv4,
    public_ipv6: n.public_ipv6,
    username: n.username,
    connection_type: n.connection_type,
    // k8s-style drivers keep credentials in an object here: never hand that out
    connection_port: typeof n.connection_port === 'number' ? n.connection_port : null,
    host_keys: [...n.host_keys],
  };
}

/** The `leases` table. */
export class LeaseStore {
  constructor(readonly knex: Knex) {}

  async insert(l: Lease): Promise<void> {
    await this.knex('leases').insert({
      id: l.id, token_id: l.tokenId, token_name: l.tokenName, state: l.state,
      labels: JSON.stringify(l.labels), node_count: l.nodeCount, request_id: l.requestId,
      node_ids: JSON.stringify(l.nodeIds), nodes: JSON.stringify(l.nodes), owner: l.owner, ttl: l.ttl,
      comment: l.comment, created_at: l.createdAt, fulfilled_at: l.fulfilledAt, expires_at: l.expiresAt,
      ended_at: l.endedAt, error: l.error, updated_at: now(),
    });
  }

  async get(id: string): Promise<Lease | null> {
    const r = await this.knex('leases').where({ id }).first('*') as Record<string, unknown> | undefined;
    return r ? leaseFromRow(r) : null;
  }

  async list(opts: { states?: readonly LeaseState[]; tokenId?: string; limit?: number } = {}): Promise<Lease[]> {
    const q = this.knex('leases').select('*').orderBy('created_at', 'desc').limit(opts.limit ?? 200);
    if (opts.states) q.whereIn('state', [...opts.states]);
    if (opts.tokenId) q.where('token_id', opts.tokenId);
    return (await q as Record<string, unknown>[]).map(leaseFromRow);
  }

  /** Nodes a token holds or waits for. */
  async nodesHeldBy(tokenId: string): Promise<number> {
    const r = await this.knex('leases').where('token_id', tokenId).whereIn('state', [...OPEN_STATES])
      .sum({ n: 'node_count' }).first() as { n: unknown } | undefined;
    return num(r?.n) ?? 0;
  }

  /** Leases this launcher must look at: its own open ones and anyone's expired ones. */
  async due(owner: string, at: number): Promise<Lease[]> {
    const rows = await this.knex('leases').select('*').whereIn('state', [...OPEN_STATES])
      .andWhere((w) => { w.where('owner', owner).orWhere('expires_at', '<=', at); }) as Record<string, unknown>[];
    return rows.map(leaseFromRow);
  }

  /**
   * Update a lease if it is still in one of `from` (optimistic transition; several launchers
   * share the table). Returns whether the row changed.
   */
  async update(id: string, from: readonly LeaseState[], fields: Partial<{
    state: LeaseState; request_id: string | null; node_ids: string[]; nodes: LeaseNode[]; owner: string;
    fulfilled_at: number; expires_at: number; ended_at: number; error: string | null; ttl: number;
  }>): Promise<boolean> {
    const row: Record<string, unknown> = { updated_at: now() };
    for (const [k, v] of Object.entries(fields)) {
      row[k] = k === 'node_ids' || k === 'nodes' ? JSON.stringify(v) : v;
    }
    const n = await this.knex('leases').where({ id }).whereIn('state', [...from]).update(row);
    return n > 0;
  }
}

/** What the lease manager needs from the launcher. */
export interface LeaseHost {
  readonly zk: ZooKeeper;
  readonly nodeCache: NodeCache;
  readonly requestCache: RequestCache;
  readonly events: LauncherEvents;
  readonly hostname: string;
}

export interface CreateLeaseInput {
  tokenId: string;
  tokenName: string;
  labels: Record<string, number>;
  ttl: number;
  comment: string | null;
}

interface PendingLease {
  leaseId: string;
  requestId: string;
  nodeTypes: string[];
  attempts: number;
  accepting: boolean;
}

export class LeaseManager {
  /** request id → the pending lease it serves */
  private readonly pending = new Map<string, PendingLease>();
  /** lease id → the locked node objects (the lock lives with these objects) */
  private readonly held = new Map<string, Node[]>();
  private readonly waiters = new Map<string, Set<() => void>>();
  /** per-lease serialisation of transitions */
  private readonly chains = new Map<string, Promise<unknown>>();
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private stopped = false;
  private recovering: Promise<void> = Promise.resolve();
  private readonly onRequest = (id: string, req: NodeRequest | null) => this.requestChanged(id, req);
  private sessionLost = false;
  private readonly onSession = (s: string) => {
    if (s === 'lost') this.sessionLost = true;
    else if (s === 'connected' && this.sessionLost) {
      this.sessionLost = false;
      void this.reacquire();
    }
  };
  /** leases changed (dashboard, metrics) */
  onChange: (() => void) | null = null;

  constructor(
    private readonly host: LeaseHost,
    readonly store: LeaseStore,
    readonly limits: LeaseLimits,
    private readonly log: Logger,
  ) {}

  /**
   * Start listening and housekeeping. Recovery of the leases this hostname held before a restart
   * runs in the background (it may wait for a dead session's locks); see recovered().
   */
  start(): void {
    this.host.events.on('request', this.onRequest);
    this.host.zk.on('state', this.onSession);
    this.recovering = this.recover().catch((err: unknown) => {
      this.log.error({ err: (err as Error).message }, `lease recovery failed: ${(err as Error).message}`);
    });
    this.timer = setInterval(() => { void this.tick(); }, this.limits.expiryIntervalMs);
    this.timer.unref();
  }

  /**
   * Graceful stop: pending requests are withdrawn (a restart submits them again) and held nodes
   * are put on hold so that no launcher reaps them while this one is away (see the top).
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.host.events.off('request', this.onRequest);
    this.host.zk.off('state', this.onSession);
    if (this.timer) clearInterval(this.timer);
    // transitions in flight finish first; a recovery still waiting for a dead session's locks
    // (up to recoveryLockTimeoutMs) is not worth delaying the stop for
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([this.ticking ?? Promise.resolve(), ...this.chains.values()]),
      new Promise((r) => { bound = setTimeout(r, 2000); }),
    ]);
    clearTimeout(bound);
    for (const p of this.pending.values()) {
      await this.host.zk.deleteNodeRequest(p.requestId).catch(() => undefined);
    }
    this.pending.clear();
    for (const [leaseId, nodes] of this.held) {
      const lease = await this.store.get(leaseId).catch(() => null);
      const remaining = lease ? Math.max(1, Math.ceil(lease.expiresAt - now())) : 3600;
      for (const node of nodes) {
        await this.putOnHold(leaseId, node, remaining).catch((err: unknown) => {
          this.log.warn({ lease: leaseId, node: node.id, err: (err as Error).message }, 'could not put leased node on hold');
        });
      }
      this.log.info({ lease: leaseId, nodes: nodes.map((n) => n.id) }, `Lease ${leaseId}: nodes put on hold until this launcher is back`);
    }
    this.held.clear();
    for (const set of this.waiters.values()) for (const w of set) w();
    this.waiters.clear();
  }

  private holdComment(leaseId: string): string {
    return `nodepool-ts lease ${leaseId}`;
  }

  private async putOnHold(leaseId: string, node: Node, remaining: number): Promise<void> {
    if (!this.host.zk.holdsLock(node) || node.id === null) return;
    try {
      const fresh = await this.host.zk.getNode(node.id);
      if (fresh && fresh.state === 'in-use') {
        fresh.state = 'hold';
        fresh.state_time = now();
        fresh.comment = this.holdComment(leaseId);
        fresh.hold_expiration = remaining;
        await this.host.zk.storeNode(fresh);
      }
    } finally {
      await this.host.zk.unlockNode(node).catch(() => undefined);
    }
  }

  /** Resolves once the leases held before a restart are taken back (or given up). */
  recovered(): Promise<void> {
    return this.recovering;
  }

  /** Leases this process holds the node locks of (dashboard, metrics). */
  heldLeaseIds(): string[] {
    return [...this.held.keys()];
  }

  pendingCount(): number {
    return this.pending.size;
  }

  private serial<T>(leaseId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(leaseId) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.chains.set(leaseId, next);
    void next.catch(() => undefined).finally(() => {
      if (this.chains.get(leaseId) === next) this.chains.delete(leaseId);
    });
    return next;
  }

  private changed(leaseId: string): void {
    const set = this.waiters.get(leaseId);
    if (set) {
      this.waiters.delete(leaseId);
      for (const w of set) w();
    }
    this.onChange?.();
  }

  // ---------------------------------------------------------------- create

  async create(input: CreateLeaseInput): Promise<Lease> {
    const nodeTypes: string[] = [];
    for (const [label, count] of Object.entries(input.labels)) for (let i = 0; i < count; i++) nodeTypes.push(label);
    const t = now();
    const lease: Lease = {
      id: randomUUID(),
      tokenId: input.tokenId,
      tokenName: input.tokenName,
      state: 'pending',
      labels: input.labels,
      nodeCount: nodeTypes.length,
      requestId: null,
      nodeIds: [],
      nodes: [],
      owner: this.host.hostname,
      ttl: input.ttl,
      comment: input.comment,
      createdAt: t,
      fulfilledAt: null,
      // a lease that is never fulfilled gives up after its ttl too
      expiresAt: t + input.ttl,
      endedAt: null,
      error: null,
    };
    await this.store.insert(lease);
    try {
      lease.requestId = await this.submit(lease.id, nodeTypes, 0);
    } catch (err) {
      await this.store.update(lease.id, ['pending'], { state: 'failed', ended_at: now(), error: 'could not submit the node request' });
      this.log.error({ lease: lease.id, err: (err as Error).message }, `Lease ${lease.id}: could not submit its node request`);
      throw new ApiError(503, 'zookeeper_unavailable', 'could not submit the node request; try again later', {}, 5);
    }
    this.log.info({ lease: lease.id, request: lease.requestId, token: lease.tokenName, labels: lease.labels, ttl: lease.ttl },
      `Lease ${lease.id}: node request ${lease.requestId} submitted`);
    this.onChange?.();
    return lease;
  }

  private async submit(leaseId: string, nodeTypes: string[], attempts: number): Promise<string> {
    const req = newNodeRequest({
      node_types: nodeTypes,
      requestor: LEASE_REQUESTOR,
      // newer Zuul sends these too; the recorder takes created_time as the request's start
      extra: { created_time: now(), requestor_data: { lease_id: leaseId } },
    });
    const id = await this.host.zk.submitNodeRequest(req, LEASE_PRIORITY);
    this.pending.set(id, { leaseId, requestId: id, nodeTypes, attempts, accepting: false });
    await this.store.update(leaseId, ['pending'], { request_id: id });
    // the request may have been answered before we registered it
    const seen = this.host.requestCache.get(id);
    if (seen && (seen.state === 'fulfilled' || seen.state === 'failed')) this.requestChanged(id, seen);
    return id;
  }

  /** Resolve when the lease is no longer pending, or after `ms`. */
  async waitSettled(leaseId: string, ms: number): Promise<void> {
    if (ms <= 0) return;
    const lease = await this.store.get(leaseId);
    if (!lease || lease.state !== 'pending') return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.waiters.get(leaseId)?.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      let set = this.waiters.get(leaseId);
      if (!set) this.waiters.set(leaseId, (set = new Set()));
      set.add(done);
    });
  }

  // ---------------------------------------------------------------- fulfilment

  private requestChanged(id: string, req: NodeRequest | null): void {
    const p = this.pending.get(id);
    if (!p || p.accepting || this.stopped) return;
    if (req === null) {
      // our ephemeral request vanished (session loss): the next tick submits a new one
      void this.serial(p.leaseId, () => this.resubmitIfGone(p));
      return;
    }
    if (req.state !== 'fulfilled' && req.state !== 'failed') return;
    p.accepting = true;
    void this.serial(p.leaseId, () => this.settle(p, req)).catch((err: unknown) => {
      this.log.error({ lease: p.leaseId, request: id, err: (err as Error).message }, `Lease ${p.leaseId}: accepting request ${id} failed`);
    });
  }

  private async settle(p: PendingLease, req: Readonly<NodeRequest>): Promise<void> {
    const zk = this.host.zk;
    if (req.state === 'failed') {
      this.pending.delete(p.requestId);
      await zk.deleteNodeRequest(p.requestId).catch(() => undefined);
      await this.store.update(p.leaseId, ['pending'], {
        state: 'failed', ended_at: now(),
        error: `node request ${p.requestId} failed: no provider could supply ${p.nodeTypes.join(', ')}`,
      });
      this.log.warn({ lease: p.leaseId, request: p.requestId, declined_by: req.declined_by },
        `Lease ${p.leaseId}: node request ${p.requestId} failed`);
      this.changed(p.leaseId);
      return;
    }
    // Accept like Zuul: every node must be allocated to this request; lock them all, then
    // delete the request.
    const locked: Node[] = [];
    let problem: string | null = null;
    for (const nid of req.nodes) {
      const node = newNode({ id: nid });
      try {
        if (!(await zk.lockNode(node, { blocking: true, timeoutMs: NODE_LOCK_TIMEOUT_MS, refresh: true }))) {
          problem = `node ${nid} vanished`;
          break;
        }
      } catch (err) {
        problem = `could not lock node ${nid}: ${(err as Error).message}`;
        break;
      }
      locked.push(node);
      if (node.allocated_to !== p.requestId) {
        problem = `node ${nid} is allocated to ${String(node.allocated_to)}, not ${p.requestId}`;
        break;
      }
    }
    this.pending.delete(p.requestId);
    await zk.deleteNodeRequest(p.requestId).catch(() => undefined);
    if (problem !== null || locked.length !== p.nodeTypes.length) {
      for (const n of locked) await zk.unlockNode(n).catch(() => undefined);
      problem ??= `request ${p.requestId} was fulfilled with ${req.nodes.length} nodes for ${p.nodeTypes.length} labels`;
      this.log.warn({ lease: p.leaseId, request: p.requestId, attempt: p.attempts + 1 }, `Lease ${p.leaseId}: ${problem}`);
      if (p.attempts + 1 < ACCEPT_ATTEMPTS && !this.stopped) {
        // Zuul resubmits when accepting fails
        await this.submit(p.leaseId, p.nodeTypes, p.attempts + 1).catch(async () => {
          await this.store.update(p.leaseId, ['pending'], { state: 'failed', ended_at: now(), error: problem });
        });
      } else {
        await this.store.update(p.leaseId, ['pending'], { state: 'failed', ended_at: now(), error: problem });
      }
      this.changed(p.leaseId);
      return;
    }
    const t = now();
    for (const node of locked) {
      node.state = 'in-use';
      node.state_time = t;
      await zk.storeNode(node);
    }
    const lease = await this.store.get(p.leaseId);
    const ok = lease !== null && await this.store.update(p.leaseId, ['pending'], {
      state: 'active', node_ids: locked.map((n) => n.id ?? ''), nodes: locked.map(leaseNodeOf),
      fulfilled_at: t, expires_at: t + lease.ttl,
    });
    if (!ok) {
      // cancelled or expired while we were accepting: give the nodes straight back
      for (const node of locked) await this.markUsed(node);
      this.log.info({ lease: p.leaseId, request: p.requestId }, `Lease ${p.leaseId}: ended before fulfilment; nodes returned`);
      this.changed(p.leaseId);
      return;
    }
    this.held.set(p.leaseId, locked);
    this.log.info({ lease: p.leaseId, request: p.requestId, nodes: locked.map((n) => n.id) },
      `Lease ${p.leaseId}: nodes ${locked.map((n) => n.id).join(', ')} in use until ${new Date((t + lease.ttl) * 1000).toISOString()}`);
    this.changed(p.leaseId);
  }

  private async resubmitIfGone(p: PendingLease): Promise<void> {
    if (this.stopped || !this.pending.has(p.requestId) || p.accepting) return;
    if (await this.host.zk.exists(paths.request(p.requestId)).catch(() => true)) return;
    this.pending.delete(p.requestId);
    const lease = await this.store.get(p.leaseId);
    if (!lease || lease.state !== 'pending') return;
    const id = await this.submit(p.leaseId, p.nodeTypes, p.attempts);
    this.log.info({ lease: p.leaseId, request: id, previous: p.requestId }, `Lease ${p.leaseId}: request ${p.requestId} vanished; resubmitted as ${id}`);
  }

  // ---------------------------------------------------------------- return

  /** used + unlock, under the lock we hold (a fresh read so nobody's change is undone) */
  private async markUsed(node: Node): Promise<void> {
    const zk = this.host.zk;
    if (node.id === null) return;
    try {
      const fresh = await zk.getNode(node.id);
      if (fresh && fresh.state !== 'deleting' && fresh.state !== 'deleted') {
        fresh.state = 'used';
        fresh.state_time = now();
        await zk.storeNode(fresh);
      }
    } finally {
      await zk.unlockNode(node).catch(() => undefined);
    }
  }

  /**
   * Lock the nodes of a lease this process does not hold (its owner stopped or died). Returns
   * null when a node is locked by someone else: the owner is alive and must do it.
   */
  private async takeOver(lease: Lease, blockingMs = 0): Promise<Node[] | null> {
    const zk = this.host.zk;
    const got: Node[] = [];
    for (const nid of lease.nodeIds) {
      if (!(await zk.exists(paths.node(nid)).catch(() => false))) continue;
      const node = newNode({ id: nid });
      let ok: boolean;
      try {
        ok = blockingMs > 0
          ? await zk.lockNode(node, { blocking: true, timeoutMs: blockingMs, refresh: true })
          : await zk.lockNode(node, { blocking: false, refresh: true });
      } catch {
        ok = false;
      }
      if (!ok) {
        if (blockingMs > 0) continue;
        for (const n of got) await zk.unlockNode(n).catch(() => undefined);
        return null;
      }
      if (node.allocated_to !== lease.requestId || !['in-use', 'hold'].includes(node.state)) {
        // not (or no longer) this lease's node
        await zk.unlockNode(node).catch(() => undefined);
        continue;
      }
      got.push(node);
    }
    return got;
  }

  /**
   * End a lease: `returned` (DELETE), `expired` (lifetime over) or `cancelled` (DELETE while
   * pending). Nodes held here are marked used and unlocked; nodes held elsewhere are taken over
   * when their owner is gone, else the owner is asked to return them (state `releasing`).
   */
  async end(leaseId: string, reason: 'returned' | 'expired'): Promise<Lease> {
    return this.serial(leaseId, async () => {
      const lease = await this.store.get(leaseId);
      if (!lease) throw new ApiError(404, 'lease_not_found', `no lease ${leaseId}`);
      if (!OPEN_STATES.includes(lease.state)) return lease;
      const t = now();
      if (lease.state === 'pending') {
        const p = [...this.pending.values()].find((x) => x.leaseId === leaseId);
        if (p) {
          this.pending.delete(p.requestId);
          await this.host.zk.deleteNodeRequest(p.requestId).catch(() => undefined);
        }
        const final: LeaseState = reason === 'expired' ? 'expired' : 'cancelled';
        await this.store.update(leaseId, ['pending'], { state: final, ended_at: t });
        this.log.info({ lease: leaseId, request: lease.requestId }, `Lease ${leaseId}: ${final} before fulfilment`);
        this.changed(leaseId);
        return (await this.store.get(leaseId)) ?? lease;
      }
      let nodes = this.held.get(leaseId);
      if (!nodes) {
        nodes = await this.takeOver(lease) ?? undefined;
        if (!nodes) {
          if (reason === 'expired') return lease;
          await this.store.update(leaseId, ['active'], { state: 'releasing' });
          this.log.info({ lease: leaseId, owner: lease.owner }, `Lease ${leaseId}: asked owner ${lease.owner} to return it`);
          this.changed(leaseId);
          return (await this.store.get(leaseId)) ?? lease;
        }
      }
      for (const node of nodes) await this.markUsed(node);
      this.held.delete(leaseId);
      const live = lease.nodes.map((n) => ({ ...n, state: 'used' }));
      await this.store.update(leaseId, ['active', 'releasing'], { state: reason, ended_at: t, nodes: live });
      this.log.info({ lease: leaseId, nodes: lease.nodeIds }, `Lease ${leaseId}: ${reason}; nodes ${lease.nodeIds.join(', ')} marked used`);
      this.changed(leaseId);
      return (await this.store.get(leaseId)) ?? lease;
    });
  }

  /** New lifetime: `ttl` seconds from now. */
  async extend(leaseId: string, ttl: number): Promise<Lease> {
    return this.serial(leaseId, async () => {
      const lease = await this.store.get(leaseId);
      if (!lease) throw new ApiError(404, 'lease_not_found', `no lease ${leaseId}`);
      if (lease.state !== 'active' && lease.state !== 'pending') {
        throw new ApiError(409, 'lease_conflict', `lease ${leaseId} is ${lease.state}; only pending or active leases can be extended`);
      }
      const expires = now() + ttl;
      if (!(await this.store.update(leaseId, ['active', 'pending'], { expires_at: expires, ttl }))) {
        throw new ApiError(409, 'lease_conflict', `lease ${leaseId} changed meanwhile; read it again`);
      }
      // held nodes: keep the hold_expiration a graceful stop would write in step (nothing to do now)
      this.log.info({ lease: leaseId, expires_at: expires }, `Lease ${leaseId}: extended to ${new Date(expires * 1000).toISOString()}`);
      this.changed(leaseId);
      return (await this.store.get(leaseId)) ?? lease;
    });
  }

  /**
   * The lease with each node's live state and addresses when active: the node cache, or the
   * node object we hold when that is newer (the cache may not have seen our `in-use` yet).
   */
  live(lease: Lease): Lease {
    if (lease.state !== 'active' && lease.state !== 'releasing') return lease;
    const held = this.held.get(lease.id) ?? [];
    const nodes = lease.nodeIds.map((id) => {
      const cached = this.host.nodeCache.get(id);
      const ours = held.find((n) => n.id === id);
      const n = ours && (!cached || ours.state_time > cached.state_time) ? ours : cached;
      if (n) return leaseNodeOf({ ...n, id });
      const snap = lease.nodes.find((x) => x.id === id);
      return snap ? { ...snap, state: null } : null;
    }).filter((n): n is LeaseNode => n !== null);
    return { ...lease, nodes };
  }

  // ---------------------------------------------------------------- housekeeping

  tick(): Promise<void> {
    if (this.ticking || this.stopped) return this.ticking ?? Promise.resolve();
    this.ticking = this.housekeeping().catch((err: unknown) => {
      this.log.warn({ err: (err as Error).message }, `lease housekeeping failed: ${(err as Error).message}`);
    }).finally(() => { this.ticking = null; });
    return this.ticking;
  }

  private async housekeeping(): Promise<void> {
    await this.recovering;
    if (this.host.zk.state !== 'connected' || this.stopped) return;
    const t = now();
    const due = await this.store.due(this.host.hostname, t);
    for (const lease of due) {
      if (this.stopped) return;
      if (lease.state === 'releasing' && this.held.has(lease.id)) {
        await this.end(lease.id, 'returned');
      } else if (lease.expiresAt <= t) {
        // not ours and still held by a live owner: end() leaves it to that owner
        await this.end(lease.id, 'expired');
      }
    }
    // our pending leases whose request vanished (session loss) get a new request
    for (const p of [...this.pending.values()]) {
      if (!p.accepting) await this.serial(p.leaseId, () => this.resubmitIfGone(p)).catch(() => undefined);
    }
    // our leases that ended elsewhere (cancelled through another launcher)
    const open = new Set(due.map((l) => l.id));
    for (const p of [...this.pending.values()]) {
      if (!open.has(p.leaseId) && !p.accepting) {
        this.pending.delete(p.requestId);
        await this.host.zk.deleteNodeRequest(p.requestId).catch(() => undefined);
      }
    }
  }

  /**
   * Our ZooKeeper session expired and a new one began: the node locks went with the old one.
   * Take them again at once (the nodes are `in-use` and unlocked, so any DeletedNodeWorker may
   * reap them meanwhile: what is gone is reported on the lease, as after a crash).
   */
  private async reacquire(): Promise<void> {
    for (const [leaseId, nodes] of [...this.held]) {
      if (this.stopped) return;
      await this.serial(leaseId, async () => {
        const kept: Node[] = [];
        const lost: string[] = [];
        for (const node of nodes) {
          if (this.host.zk.holdsLock(node)) {
            kept.push(node);
            continue;
          }
          const again = newNode({ id: node.id });
          let ok = false;
          try {
            ok = await this.host.zk.lockNode(again, { blocking: true, timeoutMs: NODE_LOCK_TIMEOUT_MS, refresh: true });
          } catch {
            ok = false;
          }
          if (ok && again.state === 'in-use' && again.allocated_to === node.allocated_to) kept.push(again);
          else {
            if (ok) await this.host.zk.unlockNode(again).catch(() => undefined);
            lost.push(node.id ?? '');
          }
        }
        if (kept.length === 0) {
          this.held.delete(leaseId);
          await this.store.update(leaseId, OPEN_STATES, { state: 'lost', ended_at: now(), error: 'the nodes were lost with the launcher\'s ZooKeeper session' });
          this.log.warn({ lease: leaseId, nodes: lost }, `Lease ${leaseId}: lost with the ZooKeeper session`);
        } else {
          this.held.set(leaseId, kept);
          if (lost.length > 0) {
            await this.store.update(leaseId, OPEN_STATES, { error: `nodes ${lost.join(', ')} were lost with the launcher's ZooKeeper session` });
          }
          this.log.info({ lease: leaseId, nodes: kept.map((n) => n.id), lost }, `Lease ${leaseId}: node locks taken again after a session loss`);
        }
        this.changed(leaseId);
      }).catch((err: unknown) => {
        this.log.error({ lease: leaseId, err: (err as Error).message }, `Lease ${leaseId}: could not lock its nodes again`);
      });
    }
  }

  /**
   * After a restart: take back the leases this hostname held (see the top of the file).
   * All node locks are requested at once so each is ours as soon as the old session dies.
   */
  async recover(): Promise<void> {
    const open = (await this.store.list({ states: OPEN_STATES, limit: 10_000 })).filter((l) => l.owner === this.host.hostname);
    await Promise.all(open.map((lease) => this.serial(lease.id, async () => {
      if (lease.state === 'pending') {
        if (lease.expiresAt <= now()) {
          await this.store.update(lease.id, ['pending'], { state: 'expired', ended_at: now() });
          return;
        }
        const types: string[] = [];
        for (const [label, count] of Object.entries(lease.labels)) for (let i = 0; i < count; i++) types.push(label);
        const id = await this.submit(lease.id, types, 0);
        this.log.info({ lease: lease.id, request: id }, `Lease ${lease.id}: recovered; node request resubmitted as ${id}`);
        return;
      }
      const nodes = await this.takeOver(lease, this.limits.recoveryLockTimeoutMs) ?? [];
      if (this.stopped) {
        for (const n of nodes) await this.host.zk.unlockNode(n).catch(() => undefined);
        return;
      }
      for (const node of nodes) {
        if (node.state === 'hold' && node.comment === this.holdComment(lease.id)) {
          node.state = 'in-use';
          node.state_time = now();
          node.comment = null;
          node.hold_expiration = null;
          await this.host.zk.storeNode(node);
        }
      }
      if (nodes.length === 0) {
        await this.store.update(lease.id, OPEN_STATES, { state: 'lost', ended_at: now(), error: 'the nodes were lost while the launcher holding them was down' });
        this.log.warn({ lease: lease.id, nodes: lease.nodeIds }, `Lease ${lease.id}: lost while this launcher was down`);
        return;
      }
      this.held.set(lease.id, nodes);
      const missing = lease.nodeIds.filter((id) => !nodes.some((n) => n.id === id));
      if (missing.length > 0) {
        await this.store.update(lease.id, OPEN_STATES, { error: `nodes ${missing.join(', ')} were lost while the launcher holding them was down` });
      }
      this.log.info({ lease: lease.id, nodes: nodes.map((n) => n.id), missing }, `Lease ${lease.id}: recovered after restart`);
    }).catch((err: unknown) => {
      this.log.error({ lease: lease.id, err: (err as Error).message }, `Lease ${lease.id}: recovery failed`);
    })));
    if (open.length > 0) this.onChange?.();
  }
}
