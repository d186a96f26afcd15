// The request decision, as a pure function of (request, pool, nodes, quota). Nodepool's handler
// mixes this with I/O; here the PoolWorker gathers the inputs, asks `planRequest`, performs the
// I/O the plan names (lock a ready node, launch a node) and asks again if the world moved.
import { MIN_READY_REQUESTOR, type Node, type NodeRequest } from '@nodepool-ts/core/model';

export interface Resources {
  cores: number;
  instances: number;
  ram: number;
}

export const ZERO: Resources = Object.freeze({ cores: 0, instances: 0, ram: 0 });

export function addResources(a: Resources, b: Resources): Resources {
  return { cores: a.cores + b.cores, instances: a.instances + b.instances, ram: a.ram + b.ram };
}

export function subResources(a: Resources, b: Resources): Resources {
  return { cores: a.cores - b.cores, instances: a.instances - b.instances, ram: a.ram - b.ram };
}

/** true when every dimension of `need` fits into `avail` (Infinity = unlimited). */
export function fits(need: Resources, avail: Resources): boolean {
  return need.cores <= avail.cores && need.instances <= avail.instances && need.ram <= avail.ram;
}

export interface PoolView {
  provider: string;
  pool: string;
  /** pool max-servers; <= 0 disables the pool */
  maxServers: number;
  maxCores: number;
  maxRam: number;
  /** label name -> resources one node of it takes */
  labels: Map<string, Resources>;
  /** the driver can launch nodes (false for static: it only hands out registered hosts) */
  canLaunch: boolean;
  ignoreProviderQuota: boolean;
}

export interface QuotaView {
  /** tenant limits minus usage of servers this provider does not own (Infinity = unlimited) */
  provider: Resources;
  /** resources used by every node of this provider in ZooKeeper, whatever its state */
  providerUsed: Resources;
  /** resources used by every node of this pool in ZooKeeper */
  poolUsed: Resources;
}

export interface PlanInput {
  request: Pick<NodeRequest, 'id' | 'node_types' | 'reuse' | 'requestor'>;
  pool: PoolView;
  quota: QuotaView;
  /** labels whose image is not available in this provider (no ready upload / cloud image) */
  unavailableLabels: ReadonlySet<string>;
  /** READY, unallocated, unlocked nodes of this provider+pool that may be reused */
  readyNodes: readonly Node[];
  /** node ids that must not be offered (e.g. a lock attempt just failed) */
  exclude?: ReadonlySet<string>;
  /** labels (multiset) already satisfied by nodes the handler holds */
  satisfied?: readonly string[];
  /**
   * How many launches this plan may start (the provider's launch circuit breaker: 0 while open,
   * 1 for its trial); a request needing more is declined with `launchRefusal`. Default: no limit.
   */
  launchAllowance?: number;
  launchRefusal?: string;
}

export type Step =
  | { label: string; action: 'reuse'; node: Node }
  | { label: string; action: 'launch' }
  | { label: string; action: 'wait' };

export type Plan =
  | { kind: 'decline'; reason: string }
  | { kind: 'proceed'; steps: Step[] };

export { MIN_READY_REQUESTOR };

/** The Zuul tenant a request (Zuul 4.3+) or node is for: its `tenant_name`, if any. */
export function tenantOf(o: { extra: Record<string, unknown> }): string | null {
  const t = o.extra['tenant_name'];
  return typeof t === 'string' && t !== '' ? t : null;
}

/** A node now serves `tenant` (Nodepool writes the request's tenant_name, even none, on allocation). */
export function setTenant(node: { extra: Record<string, unknown> }, tenant: string | null): void {
  if (tenant === null) delete node.extra['tenant_name'];
  else node.extra['tenant_name'] = tenant;
}

function poolLimits(pool: PoolView): Resources {
  return { cores: pool.maxCores, instances: pool.maxServers, ram: pool.maxRam };
}

/** Labels of node_types not yet satisfied (multiset difference). */
export function neededLabels(nodeTypes: readonly string[], satisfied: readonly string[] = []): string[] {
  const left = new Map<string, number>();
  for (const l of satisfied) left.set(l, (left.get(l) ?? 0) + 1);
  const out: string[] = [];
  for (const l of nodeTypes) {
    const n = left.get(l) ?? 0;
    if (n > 0) left.set(l, n - 1);
    else out.push(l);
  }
  return out;
}

export function planRequest(input: PlanInput): Plan {
  const { request, pool, quota } = input;
  if (pool.maxServers <= 0) return { kind: 'decline', reason: 'pool is disabled by max_servers' };
  for (const label of request.node_types) {
    if (!pool.labels.has(label)) {
      return { kind: 'decline', reason: `label ${label} is not offered by pool ${pool.provider}-${pool.pool}` };
    }
  }
  for (const label of request.node_types) {
    if (input.unavailableLabels.has(label)) {
      return { kind: 'decline', reason: `no image is available for label ${label} in provider ${pool.provider}` };
    }
  }
  // Would the whole request fit even into an empty provider/pool? (hasProviderQuota)
  let whole = ZERO;
  for (const label of request.node_types) whole = addResources(whole, pool.labels.get(label) ?? ZERO);
  if (pool.canLaunch) {
    if (!pool.ignoreProviderQuota && !fits(whole, quota.provider)) {
      return { kind: 'decline', reason: 'it would exceed quota' };
    }
    if (!fits(whole, poolLimits(pool))) {
      return { kind: 'decline', reason: 'it would exceed pool limits' };
    }
  } else if (request.node_types.length > pool.maxServers) {
    return { kind: 'decline', reason: 'it would exceed pool limits' };
  }

  const exclude = input.exclude ?? new Set<string>();
  const taken = new Set<string>();
  let providerUsed = quota.providerUsed;
  let poolUsed = quota.poolUsed;
  const steps: Step[] = [];
  for (const label of neededLabels(request.node_types, input.satisfied)) {
    if (request.reuse) {
      const node = input.readyNodes.find((n) => n.id !== null && !taken.has(n.id) && !exclude.has(n.id)
        && n.type.includes(label));
      if (node && node.id !== null) {
        taken.add(node.id);
        steps.push({ label, action: 'reuse', node });
        continue;
      }
    }
    if (pool.canLaunch && input.launchAllowance !== undefined
      && steps.filter((st) => st.action === 'launch').length >= input.launchAllowance) {
      return { kind: 'decline', reason: input.launchRefusal ?? 'launches are suspended' };
    }
    const need = pool.labels.get(label) ?? ZERO;
    const providerOk = pool.ignoreProviderQuota
      || fits(need, subResources(quota.provider, providerUsed));
    const poolOk = fits(need, subResources(poolLimits(pool), poolUsed));
    if (pool.canLaunch && providerOk && poolOk) {
      providerUsed = addResources(providerUsed, need);
      poolUsed = addResources(poolUsed, need);
      steps.push({ label, action: 'launch' });
    } else {
      if (request.requestor === MIN_READY_REQUESTOR) {
        return { kind: 'decline', reason: 'min-ready request at capacity' };
      }
      steps.push({ label, action: 'wait' });
    }
  }
  return { kind: 'proceed', steps };
}

/** Nodepool's request order: (priority prefix, relative_priority, sequence). */
export function compareRequests(
  a: Pick<NodeRequest, 'id' | 'relative_priority'>,
  b: Pick<NodeRequest, 'id' | 'relative_priority'>,
): number {
  // (compared in place: a pass sorts every cached request, and splitting the ids allocated)
  const ai = a.id ?? '';
  const bi = b.id ?? '';
  const ad = dashOr(ai, 0, ai.length);
  const bd = dashOr(bi, 0, bi.length);
  const byPriority = compareRange(ai, 0, ad, bi, 0, bd);
  if (byPriority !== 0) return byPriority;
  if (a.relative_priority !== b.relative_priority) return a.relative_priority - b.relative_priority;
  // the sequence: up to the next '-' (what split('-', 2) keeps), empty without a first '-'
  const as = ad < ai.length ? ad + 1 : ad;
  const bs = bd < bi.length ? bd + 1 : bd;
  return compareRange(ai, as, dashOr(ai, as, ai.length), bi, bs, dashOr(bi, bs, bi.length));
}

/** Index of the first '-' in s at or after `from`, else `end`. */
function dashOr(s: string, from: number, end: number): number {
  const i = s.indexOf('-', from);
  return i < 0 ? end : i;
}

/** s.slice(as, ae) compared with t.slice(ts, te) as JavaScript compares strings, without slicing. */
function compareRange(s: string, as: number, ae: number, t: string, ts: number, te: number): number {
  const ls = ae - as;
  const lt = te - ts;
  const n = Math.min(ls, lt);
  for (let i = 0; i < n; i++) {
    const d = s.charCodeAt(as + i) - t.charCodeAt(ts + i);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return ls === lt ? 0 : ls < lt ? -1 : 1;
}
