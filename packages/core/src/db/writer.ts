// Writing a batch of recorder events in ONE transaction: the event rows in order (idempotent
// through their uid, so a replayed batch is harmless), and the current rows (nodes, requests,
// builds, uploads) upserted once per object with the last state of the batch.
import type { Knex } from 'knex';
import type {
  BuildEvent, LaunchAttemptEvent, NodeEvent, NodeSnapshot, RecorderEvent, RequestEvent, UploadEvent,
} from './events.js';

export type Engine = 'mysql' | 'sqlite';

/** rows per INSERT statement: well under SQLite's 32766 and MySQL's 65535 placeholders */
const CHUNK = 300;

type Row = Record<string, string | number | boolean | null>;

function chunks<T>(items: T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** SQL for "the value this INSERT tried to write" in an upsert's update clause. */
function ex(engine: Engine, col: string): string {
  return engine === 'mysql' ? `VALUES(\`${col}\`)` : `excluded."${col}"`;
}

/** SQL for "the value already in the row" in an upsert's update clause. */
function old(engine: Engine, table: string, col: string): string {
  return engine === 'mysql' ? `\`${col}\`` : `"${table}"."${col}"`;
}

/**
 * The update clause of an upsert: every column takes the new value except the `special` ones.
 * MySQL evaluates ON DUPLICATE KEY UPDATE assignments left to right and later ones see the
 * updated values, so the special (derived) columns come first and read the old row.
 */
function mergeSpec(knex: Knex, engine: Engine, table: string, cols: string[], key: string[],
  special: Record<string, string>): Record<string, Knex.Raw> {
  const spec: Record<string, Knex.Raw> = {};
  for (const [col, sql] of Object.entries(special)) spec[col] = knex.raw(sql);
  for (const col of cols) {
    if (key.includes(col) || col in special) continue;
    spec[col] = knex.raw(ex(engine, col));
  }
  return spec;
}

function firstOf(engine: Engine, table: string, col: string): string {
  return `COALESCE(${old(engine, table, col)}, ${ex(engine, col)})`;
}

async function upsert(trx: Knex.Transaction, engine: Engine, table: string, key: string[], rows: Row[],
  special: (table: string) => Record<string, string>): Promise<void> {
  if (rows.length === 0) return;
  const first = rows[0];
  if (first === undefined) return;
  const cols = Object.keys(first);
  const spec = mergeSpec(trx, engine, table, cols, key, special(table));
  for (const part of chunks(rows)) {
    await trx(table).insert(part).onConflict(key).merge(spec);
  }
}

async function insertEvents(trx: Knex.Transaction, table: string, rows: Row[]): Promise<void> {
  for (const part of chunks(rows)) {
    await trx(table).insert(part).onConflict('uid').ignore();
  }
}

function nodeRow(n: NodeSnapshot, at: number): Row {
  return { ...n, ready_at: null, in_use_at: null, deleted_at: null, updated_at: at };
}

/** The transition time of a state: the object's own state_time when it just took that state. */
function stateAt(stateTime: number | null, at: number): number {
  return stateTime ?? at;
}

interface BatchRows {
  nodeEvents: Row[];
  nodes: Map<string, Row>;
  requestEvents: Row[];
  requests: Map<string, Row>;
  attempts: Row[];
  builds: Map<string, Row>;
  uploads: Map<string, Row>;
}

function addNode(b: BatchRows, e: NodeEvent): void {
  const n = e.node;
  if (e.transition) {
    b.nodeEvents.push({
      uid: e.uid, node_id: n.id, provider: n.provider, pool: n.pool, label: n.label,
      from_state: e.from, to_state: e.to, at: e.at, state_time: n.state_time, launcher: e.launcher, reason: e.reason,
    });
  }
  const prev = b.nodes.get(n.id);
  const row = nodeRow(n, e.at);
  // the first time within the batch wins, like the COALESCE against the stored row
  row.ready_at = prev?.ready_at ?? (!e.removed && n.state === 'ready' ? stateAt(n.state_time, e.at) : null);
  row.in_use_at = prev?.in_use_at ?? (!e.removed && n.state === 'in-use' ? stateAt(n.state_time, e.at) : null);
  row.deleted_at = e.removed ? e.at : null;
  // a node seen only after creation (launcher restart) keeps the created_time it carries
  b.nodes.set(n.id, row);
}

function addRequest(b: BatchRows, e: RequestEvent): void {
  const r = e.request;
  if (e.transition) {
    b.requestEvents.push({
      uid: e.uid, request_id: r.id, from_state: e.from, to_state: e.to, at: e.at,
      state_time: r.state_time, launcher: e.launcher, reason: e.reason,
    });
  }
  const prev = b.requests.get(r.id);
  const createdAt = (prev?.created_at as number | null | undefined) ?? r.created_time ?? e.at;
  const fulfilledAt = (prev?.fulfilled_at as number | null | undefined)
    ?? (!e.removed && r.state === 'fulfilled' ? stateAt(r.state_time, e.at) : null);
  b.requests.set(r.id, {
    latency_ms: fulfilledAt !== null ? Math.max(0, Math.round((fulfilledAt - createdAt) * 1000)) : null,
    id: r.id, requestor: r.requestor, priority: r.priority, relative_priority: r.relative_priority,
    labels: r.labels, nodes: r.nodes, provider: r.provider, reuse: r.reuse, state: r.state,
    state_time: r.state_time, declined_by: r.declined_by, launcher: e.launcher,
    created_at: createdAt, fulfilled_at: fulfilledAt,
    deleted_at: e.removed ? e.at : null, updated_at: e.at,
  });
}

function addAttempt(b: BatchRows, e: LaunchAttemptEvent): void {
  b.attempts.push({
    uid: e.uid, node_id: e.node_id, provider: e.provider, pool: e.pool, label: e.label, attempt: e.attempt,
    started_at: e.started_at, ended_at: e.ended_at, result: e.result, error: e.error, launcher: e.launcher,
  });
}

function addBuild(b: BatchRows, e: BuildEvent): void {
  const key = `${e.image}\u0000${e.build_id}`;
  const prev = b.builds.get(key);
  const createdAt = (prev?.created_at as number | null | undefined) ?? (e.state === 'building' ? stateAt(e.state_time, e.at) : e.at);
  const readyAt = (prev?.ready_at as number | null | undefined) ?? (!e.removed && e.state === 'ready' ? stateAt(e.state_time, e.at) : null);
  b.builds.set(key, {
    duration_s: readyAt !== null ? Math.max(0, readyAt - createdAt) : null,
    image: e.image, build_id: e.build_id, state: e.state, state_time: e.state_time, builder: e.builder,
    builder_id: e.builder_id, formats: e.formats, username: e.username, created_at: createdAt, ready_at: readyAt,
    deleted_at: e.removed ? e.at : null, updated_at: e.at,
  });
}

function addUpload(b: BatchRows, e: UploadEvent): void {
  const key = `${e.image}\u0000${e.build_id}\u0000${e.provider}\u0000${e.upload_id}`;
  const prev = b.uploads.get(key);
  const createdAt = (prev?.created_at as number | null | undefined) ?? (e.state === 'uploading' ? stateAt(e.state_time, e.at) : e.at);
  const readyAt = (prev?.ready_at as number | null | undefined) ?? (!e.removed && e.state === 'ready' ? stateAt(e.state_time, e.at) : null);
  b.uploads.set(key, {
    duration_s: readyAt !== null ? Math.max(0, readyAt - createdAt) : null,
    image: e.image, build_id: e.build_id, provider: e.provider, upload_id: e.upload_id, state: e.state,
    state_time: e.state_time, external_id: e.external_id, external_name: e.external_name, format: e.format,
    username: e.username, created_at: createdAt, ready_at: readyAt,
    deleted_at: e.removed ? e.at : null, updated_at: e.at,
  });
}

/** Write events (in order) in one transaction. Throws the driver's error; the caller retries. */
export async function writeBatch(knex: Knex, engine: Engine, events: readonly RecorderEvent[]): Promise<void> {
  if (events.length === 0) return;
  const b: BatchRows = {
    nodeEvents: [], nodes: new Map(), requestEvents: [], requests: new Map(), attempts: [],
    builds: new Map(), uploads: new Map(),
  };
  for (const e of events) {
    switch (e.kind) {
      case 'node': addNode(b, e); break;
      case 'request': addRequest(b, e); break;
      case 'attempt': addAttempt(b, e); break;
      case 'build': addBuild(b, e); break;
      case 'upload': addUpload(b, e); break;
    }
  }
  await knex.transaction(async (trx) => {
    await insertEvents(trx, 'node_events', b.nodeEvents);
    await insertEvents(trx, 'request_events', b.requestEvents);
    await insertEvents(trx, 'launch_attempts', b.attempts);
    await upsert(trx, engine, 'nodes', ['id'], [...b.nodes.values()], (t) => ({
      ready_at: firstOf(engine, t, 'ready_at'),
      in_use_at: firstOf(engine, t, 'in_use_at'),
      created_time: `COALESCE(${ex(engine, 'created_time')}, ${old(engine, t, 'created_time')})`,
    }));
    await upsert(trx, engine, 'requests', ['id'], [...b.requests.values()], (t) => ({
      // first: reads the old created_at/fulfilled_at (see mergeSpec)
      latency_ms: `COALESCE(${old(engine, t, 'latency_ms')}, ROUND((${firstOf(engine, t, 'fulfilled_at')} - ${firstOf(engine, t, 'created_at')}) * 1000))`,
      created_at: firstOf(engine, t, 'created_at'),
      fulfilled_at: firstOf(engine, t, 'fulfilled_at'),
    }));
    const durations = (t: string) => ({
      duration_s: `COALESCE(${old(engine, t, 'duration_s')}, ${firstOf(engine, t, 'ready_at')} - ${firstOf(engine, t, 'created_at')})`,
      created_at: firstOf(engine, t, 'created_at'),
      ready_at: firstOf(engine, t, 'ready_at'),
    });
    await upsert(trx, engine, 'image_builds', ['image', 'build_id'], [...b.builds.values()], durations);
    await upsert(trx, engine, 'image_uploads', ['image', 'build_id', 'provider', 'upload_id'], [...b.uploads.values()], durations);
  });
}

/** Rows of `nodes` not marked deleted, as snapshots (for reconciliation). */
export async function liveNodes(knex: Knex): Promise<Map<string, NodeSnapshot>> {
  const rows: (NodeSnapshot & Record<string, unknown>)[] = await knex('nodes').whereNull('deleted_at').select(
    'id', 'provider', 'pool', 'label', 'cloud', 'region', 'az', 'external_id', 'hostname', 'public_ipv4',
    'private_ipv4', 'public_ipv6', 'interface_ip', 'image_id', 'state', 'state_time', 'allocated_to', 'launcher',
    'hold_job', 'comment', 'hold_expiration', 'created_time');
  const out = new Map<string, NodeSnapshot>();
  for (const r of rows) {
    out.set(r.id, { ...r, hold_expiration: r.hold_expiration === null ? null : Number(r.hold_expiration) });
  }
  return out;
}

export interface LiveRequest { id: string; state: RequestEvent['request']['state'] }

export async function liveRequests(knex: Knex): Promise<Map<string, RequestEvent['request']>> {
  const rows: Record<string, unknown>[] = await knex('requests').whereNull('deleted_at').select(
    'id', 'requestor', 'priority', 'relative_priority', 'labels', 'nodes', 'provider', 'reuse', 'state',
    'state_time', 'declined_by', 'created_at');
  const out = new Map<string, RequestEvent['request']>();
  for (const r of rows) {
    const id = String(r.id);
    out.set(id, {
      id,
      requestor: (r.requestor as string | null) ?? null,
      priority: r.priority === null ? null : Number(r.priority),
      relative_priority: Number(r.relative_priority ?? 0),
      labels: String(r.labels ?? ''),
      nodes: String(r.nodes ?? ''),
      provider: (r.provider as string | null) ?? null,
      reuse: Boolean(r.reuse),
      state: r.state as RequestEvent['request']['state'],
      state_time: r.state_time === null ? null : Number(r.state_time),
      declined_by: String(r.declined_by ?? ''),
      created_time: r.created_at === null ? null : Number(r.created_at),
    });
  }
  return out;
}

export interface GapRecord {
  startedAt: number | null;
  endedAt: number | null;
  dropped: number;
  reason: string;
  launcher: string | null;
}

export async function recordGap(knex: Knex, gap: GapRecord, now: number): Promise<void> {
  await knex('history_gaps').insert({
    started_at: gap.startedAt, ended_at: gap.endedAt, dropped: gap.dropped, reason: gap.reason,
    recorded_at: now, launcher: gap.launcher,
  });
}

/**
 * Delete history older than `cutoff` (Unix seconds): events, attempts, and current rows of
 * objects deleted before it. In slices, so no statement holds locks for long.
 */
export async function pruneHistory(knex: Knex, cutoff: number, slice = 2000): Promise<number> {
  const plan: [string, string, string][] = [
    ['node_events', 'id', 'at'],
    ['request_events', 'id', 'at'],
    ['launch_attempts', 'id', 'started_at'],
    ['history_gaps', 'id', 'recorded_at'],
    ['nodes', 'id', 'deleted_at'],
    ['requests', 'id', 'deleted_at'],
  ];
  let total = 0;
  for (const [table, key, col] of plan) {
    for (;;) {
      const ids: Record<string, string | number>[] = await knex(table).where(col, '<', cutoff).select(key).limit(slice);
      if (ids.length === 0) break;
      const values = ids.map((r) => r[key]).filter((v): v is string | number => v !== undefined);
      total += await knex(table).whereIn(key, values).delete();
      if (ids.length < slice) break;
    }
  }
  total += await knex('image_builds').where('deleted_at', '<', cutoff).delete();
  total += await knex('image_uploads').where('deleted_at', '<', cutoff).delete();
  return total;
}
