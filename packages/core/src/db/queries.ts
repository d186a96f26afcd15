// Read side of the history tables, for the CLI and the web API. Aggregates (percentiles) are
// computed here from plain rows: the same code on MySQL and SQLite, no dialect-specific SQL.
import type { Knex } from 'knex';
import type { Database } from './connection.js';
import { MIN_READY_REQUESTOR } from '../model/types.js';

export interface HistoryFilter {
  node?: string | null;
  /** matches one of the node's labels */
  label?: string | null;
  provider?: string | null;
  /** Unix seconds; events at or after */
  since?: number | null;
  /** the most recent `limit` events (still returned oldest first); null/0 = all */
  limit?: number | null;
}

export interface HistoryEntry {
  /** Unix seconds the change was recorded */
  at: number;
  nodeId: string;
  label: string | null;
  provider: string | null;
  pool: string | null;
  /** null: the node appeared */
  fromState: string | null;
  /** null: the node's znode was removed */
  toState: string | null;
  launcher: string | null;
  reason: string | null;
}

function num(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) ? n : null;
}

function text(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}

function labelFilter(q: Knex.QueryBuilder, column: string, label: string): void {
  // labels are stored comma-joined (a node may carry several)
  q.where((w) => {
    w.where(column, label)
      .orWhere(column, 'like', `${label},%`)
      .orWhere(column, 'like', `%,${label}`)
      .orWhere(column, 'like', `%,${label},%`);
  });
}

/**
 * An event query's rows since `since`, oldest first; with a `limit`, the newest that many (still
 * oldest first).
 */
async function oldestFirst(q: Knex.QueryBuilder, filter: { since?: number | null; limit?: number | null }): Promise<Record<string, unknown>[]> {
  if (filter.since !== null && filter.since !== undefined) q.where('at', '>=', filter.since);
  const limit = filter.limit ?? 0;
  if (limit > 0) q.orderBy([{ column: 'at', order: 'desc' }, { column: 'id', order: 'desc' }]).limit(limit);
  else q.orderBy([{ column: 'at', order: 'asc' }, { column: 'id', order: 'asc' }]);
  const rows: Record<string, unknown>[] = await q;
  if (limit > 0) rows.reverse();
  return rows;
}

/** Node state transitions, oldest first. */
export async function queryHistory(db: Database, filter: HistoryFilter = {}): Promise<HistoryEntry[]> {
  const q = db.knex('node_events').select('id', 'at', 'node_id', 'label', 'provider', 'pool', 'from_state', 'to_state', 'launcher', 'reason');
  if (filter.node) q.where('node_id', filter.node);
  if (filter.provider) q.where('provider', filter.provider);
  if (filter.label) labelFilter(q, 'label', filter.label);
  const rows = await oldestFirst(q, filter);
  return rows.map((r) => ({
    at: num(r.at) ?? 0,
    nodeId: String(r.node_id),
    label: text(r.label),
    provider: text(r.provider),
    pool: text(r.pool),
    fromState: text(r.from_state),
    toState: text(r.to_state),
    launcher: text(r.launcher),
    reason: text(r.reason),
  }));
}

export interface RequestHistoryEntry {
  at: number;
  requestId: string;
  fromState: string | null;
  toState: string | null;
  launcher: string | null;
  reason: string | null;
}

/** Request state transitions, oldest first. */
export async function queryRequestHistory(db: Database,
  filter: { request?: string | null; since?: number | null; limit?: number | null } = {}): Promise<RequestHistoryEntry[]> {
  const q = db.knex('request_events').select('id', 'at', 'request_id', 'from_state', 'to_state', 'launcher', 'reason');
  if (filter.request) q.where('request_id', filter.request);
  const rows = await oldestFirst(q, filter);
  return rows.map((r) => ({
    at: num(r.at) ?? 0,
    requestId: String(r.request_id),
    fromState: text(r.from_state),
    toState: text(r.to_state),
    launcher: text(r.launcher),
    reason: text(r.reason),
  }));
}

/**
 * Nearest-rank percentile (p in 0..100) of unsorted values; null for no values. Nearest-rank
 * always returns an observed value, which reads better than an interpolated one for latencies.
 */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? null;
}

export interface StatsRow {
  label: string;
  /** the provider of the nodes; `-` for requests no node of which is known (failed, pending) */
  provider: string;
  /** nodes created in the period */
  launched: number;
  /** of those, nodes that became ready */
  ready: number;
  /** nodes that went to `failed` in the period */
  failed: number;
  /** launch attempts that did not end `ready` in the period (each retry counts) */
  failedAttempts: number;
  /** seconds from creation to ready */
  launchP50: number | null;
  launchP95: number | null;
  /** seconds a node waited ready before it went in-use */
  readyBeforeUseP50: number | null;
  readyBeforeUseP95: number | null;
  /**
   * requests created in the period asking for this label (once per request), from Zuul and other
   * clients: the launchers' own min-ready requests are counted apart, they are not waiting demand
   */
  requests: number;
  fulfilled: number;
  failedRequests: number;
  /** seconds from request creation to fulfilment */
  fulfilP50: number | null;
  fulfilP95: number | null;
  /** min-ready requests created in the period for this label (a launcher replacing a used node) */
  minReadyRequests: number;
}

export interface StatsReport {
  /** Unix seconds; null = all recorded history */
  since: number | null;
  rows: StatsRow[];
}

interface Acc {
  launched: number;
  ready: number;
  failed: Set<string>;
  failedAttempts: number;
  launch: number[];
  readyBeforeUse: number[];
  requests: number;
  fulfilled: number;
  failedRequests: number;
  fulfil: number[];
  minReady: number;
}

function splitLabels(s: unknown): string[] {
  const t = text(s);
  if (t === null || t === '') return ['-'];
  return t.split(',');
}

/** Per label and provider: launches, failures, launch time, idle ready time, requests, latency. */
export async function queryStats(db: Database, opts: { since?: number | null } = {}): Promise<StatsReport> {
  const since = opts.since ?? null;
  const k = db.knex;
  const accs = new Map<string, Acc>();
  const acc = (label: string, provider: string | null): Acc => {
    const key = `${label}\u0000${provider ?? '-'}`;
    let a = accs.get(key);
    if (a === undefined) {
      a = { launched: 0, ready: 0, failed: new Set(), failedAttempts: 0, launch: [], readyBeforeUse: [], requests: 0, fulfilled: 0, failedRequests: 0, fulfil: [], minReady: 0 };
      accs.set(key, a);
    }
    return a;
  };
  const after = (q: Knex.QueryBuilder, col: string) => (since === null ? q : q.where(col, '>=', since));

  const nodes: Record<string, unknown>[] = await after(k('nodes').select('label', 'provider', 'created_time', 'ready_at', 'in_use_at'), 'created_time');
  for (const n of nodes) {
    const created = num(n.created_time);
    const ready = num(n.ready_at);
    const inUse = num(n.in_use_at);
    for (const label of splitLabels(n.label)) {
      const a = acc(label, text(n.provider));
      a.launched += 1;
      if (ready !== null) {
        a.ready += 1;
        if (created !== null && ready >= created) a.launch.push(ready - created);
        if (inUse !== null && inUse >= ready) a.readyBeforeUse.push(inUse - ready);
      }
    }
  }

  const failures: Record<string, unknown>[] = await after(k('node_events').select('node_id', 'label', 'provider').where('to_state', 'failed'), 'at');
  for (const f of failures) {
    for (const label of splitLabels(f.label)) acc(label, text(f.provider)).failed.add(String(f.node_id));
  }

  const attempts: Record<string, unknown>[] = await after(k('launch_attempts').select('label', 'provider').whereNot('result', 'ready'), 'started_at');
  for (const t of attempts) {
    for (const label of splitLabels(t.label)) acc(label, text(t.provider)).failedAttempts += 1;
  }

  const requests: Record<string, unknown>[] = await after(
    k('requests').select('requestor', 'labels', 'nodes', 'state', 'created_at', 'fulfilled_at', 'latency_ms'), 'created_at');
  // the provider a request's label was served from is the provider of the node in that position
  const nodeIds = new Set<string>();
  for (const r of requests) for (const id of (text(r.nodes) ?? '').split(',')) if (id !== '') nodeIds.add(id);
  const providerOf = new Map<string, string | null>();
  const ids = [...nodeIds];
  for (let i = 0; i < ids.length; i += 500) {
    const part: Record<string, unknown>[] = await k('nodes').select('id', 'provider').whereIn('id', ids.slice(i, i + 500));
    for (const p of part) providerOf.set(String(p.id), text(p.provider));
  }
  for (const r of requests) {
    const labels = (text(r.labels) ?? '').split(',');
    const nodeList = (text(r.nodes) ?? '').split(',');
    const latency = num(r.latency_ms);
    const seen = new Set<string>();
    labels.forEach((label, i) => {
      if (label === '') return;
      const nodeId = nodeList[i];
      const provider = nodeId !== undefined && nodeId !== '' ? providerOf.get(nodeId) ?? null : null;
      const key = `${label}\u0000${provider ?? '-'}`;
      if (seen.has(key)) return;
      seen.add(key);
      const a = acc(label, provider);
      if (r.requestor === MIN_READY_REQUESTOR) {
        a.minReady += 1;
        return;
      }
      a.requests += 1;
      if (r.state === 'failed') a.failedRequests += 1;
      if (num(r.fulfilled_at) !== null) {
        a.fulfilled += 1;
        if (latency !== null) a.fulfil.push(latency / 1000);
      }
    });
  }

  const rows: StatsRow[] = [];
  for (const [key, a] of accs) {
    const [label = '-', provider = '-'] = key.split('\u0000');
    rows.push({
      label, provider,
      launched: a.launched, ready: a.ready, failed: a.failed.size, failedAttempts: a.failedAttempts,
      launchP50: percentile(a.launch, 50), launchP95: percentile(a.launch, 95),
      readyBeforeUseP50: percentile(a.readyBeforeUse, 50), readyBeforeUseP95: percentile(a.readyBeforeUse, 95),
      requests: a.requests, fulfilled: a.fulfilled, failedRequests: a.failedRequests,
      fulfilP50: percentile(a.fulfil, 50), fulfilP95: percentile(a.fulfil, 95), minReadyRequests: a.minReady,
    });
  }
  rows.sort((x, y) => (x.label === y.label ? x.provider.localeCompare(y.provider) : x.label.localeCompare(y.label)));
  return { since, rows };
}

export interface DeletedNode {
  id: string;
  provider: string | null;
  pool: string | null;
  label: string | null;
  externalId: string | null;
  hostname: string | null;
  publicIpv4: string | null;
  /** the state the node was in when its znode went away (normally `deleted`) */
  lastState: string;
  allocatedTo: string | null;
  launcher: string | null;
  createdTime: number | null;
  deletedAt: number;
}

/** Nodes whose znode is gone, most recently deleted first. */
export async function queryDeletedNodes(db: Database, opts: { since?: number | null; limit?: number | null } = {}): Promise<DeletedNode[]> {
  const q = db.knex('nodes').whereNotNull('deleted_at')
    .select('id', 'provider', 'pool', 'label', 'external_id', 'hostname', 'public_ipv4', 'state', 'allocated_to',
      'launcher', 'created_time', 'deleted_at')
    .orderBy([{ column: 'deleted_at', order: 'desc' }, { column: 'id', order: 'desc' }]);
  if (opts.since !== null && opts.since !== undefined) q.where('deleted_at', '>=', opts.since);
  if (opts.limit) q.limit(opts.limit);
  const rows: Record<string, unknown>[] = await q;
  return rows.map((r) => ({
    id: String(r.id),
    provider: text(r.provider),
    pool: text(r.pool),
    label: text(r.label),
    externalId: text(r.external_id),
    hostname: text(r.hostname),
    publicIpv4: text(r.public_ipv4),
    lastState: String(r.state),
    allocatedTo: text(r.allocated_to),
    launcher: text(r.launcher),
    createdTime: num(r.created_time),
    deletedAt: num(r.deleted_at) ?? 0,
  }));
}

export interface HistoryGap {
  startedAt: number | null;
  endedAt: number | null;
  dropped: number;
  reason: string;
  recordedAt: number;
  launcher: string | null;
}

/** Stretches of history known to be incomplete, overlapping [since, now]. */
export async function queryGaps(db: Database, opts: { since?: number | null } = {}): Promise<HistoryGap[]> {
  const q = db.knex('history_gaps').select('started_at', 'ended_at', 'dropped', 'reason', 'recorded_at', 'launcher').orderBy('id');
  if (opts.since !== null && opts.since !== undefined) q.where('recorded_at', '>=', opts.since);
  const rows: Record<string, unknown>[] = await q;
  return rows.map((r) => ({
    startedAt: num(r.started_at),
    endedAt: num(r.ended_at),
    dropped: num(r.dropped) ?? 0,
    reason: String(r.reason),
    recordedAt: num(r.recorded_at) ?? 0,
    launcher: text(r.launcher),
  }));
}
