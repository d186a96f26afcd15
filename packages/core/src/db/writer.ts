// Writing a batch of recorder events in ONE transaction: the event rows in order (idempotent
// through their uid, so a replayed batch is harmless), and the current rows (nodes, requests,
// builds, uploads) upserted once per object with the last state of the batch.
//
// This runs in the launcher for every batch, so the statements are written here directly, one
// multi-row INSERT per table, rather than through knex's query builder (which cost the launcher
// tens of microseconds per event): MySQL gets the values escaped as mysql2's own escaper does
// (what its placeholders do) and the statements go straight to a pooled mysql2 connection;
// SQLite gets compiled one-row statements with bound parameters on the pooled connection.
import type { Knex } from 'knex';
import mysql2 from 'mysql2';
import type {
  BuildEvent, LaunchAttemptEvent, NodeEvent, NodeSnapshot, RecorderEvent, RequestEvent, UploadEvent,
} from './events.js';

export type Engine = 'mysql' | 'sqlite';

/** rows per MySQL INSERT statement (a statement of 300 node rows is about 100 KB) */
const CHUNK = 300;

type Value = string | number | null;
type Row = Value[];

/** A table the batch writes, its columns in the order rows are built. */
interface Table {
  name: string;
  cols: readonly string[];
  /** conflict key of an upserted table; null: an event table (a uid already written is skipped) */
  key: readonly string[] | null;
  /**
   * the columns an upsert updates when the object was removed and the batch holds nothing else
   * of it: a removal seen through a watch carries a snapshot that may be older than the row
   * (a request deleted before the cache read its `fulfilled`), so the row keeps its values
   */
  onRemoval?: readonly string[];
}

const NODE_EVENTS: Table = {
  name: 'node_events', key: null,
  cols: ['uid', 'node_id', 'provider', 'pool', 'label', 'from_state', 'to_state', 'at', 'state_time', 'launcher', 'reason'],
};
const REQUEST_EVENTS: Table = {
  name: 'request_events', key: null,
  cols: ['uid', 'request_id', 'from_state', 'to_state', 'at', 'state_time', 'launcher', 'reason'],
};
const ATTEMPTS: Table = {
  name: 'launch_attempts', key: null,
  cols: ['uid', 'node_id', 'provider', 'pool', 'label', 'attempt', 'started_at', 'ended_at', 'result', 'error', 'launcher'],
};
/** the NodeSnapshot fields, then the derived columns */
const NODE_FIELDS = [
  'id', 'provider', 'pool', 'label', 'cloud', 'region', 'az', 'external_id', 'hostname', 'public_ipv4', 'private_ipv4',
  'public_ipv6', 'interface_ip', 'image_id', 'state', 'state_time', 'allocated_to', 'launcher', 'hold_job', 'comment',
  'hold_expiration', 'created_time',
] as const;
const NODES: Table = { name: 'nodes', key: ['id'], cols: [...NODE_FIELDS, 'ready_at', 'in_use_at', 'deleted_at', 'updated_at'] };
const REMOVAL_COLS = ['state', 'deleted_at', 'updated_at'];
const NODES_REMOVED: Table = { ...NODES, onRemoval: REMOVAL_COLS };
const N_STATE = NODE_FIELDS.indexOf('state');
const N_READY = NODE_FIELDS.length;
const N_IN_USE = N_READY + 1;
const N_DELETED = N_READY + 2;
const N_UPDATED = N_READY + 3;
const REQUESTS: Table = {
  name: 'requests', key: ['id'],
  cols: ['id', 'requestor', 'priority', 'relative_priority', 'labels', 'nodes', 'provider', 'reuse', 'state', 'state_time',
    'declined_by', 'launcher', 'created_at', 'fulfilled_at', 'latency_ms', 'deleted_at', 'updated_at'],
};
const REQUESTS_REMOVED: Table = { ...REQUESTS, onRemoval: REMOVAL_COLS };
const R_STATE = 8;
const R_CREATED = 12;
const R_FULFILLED = 13;
const R_DELETED = 15;
const R_UPDATED = 16;
const BUILDS: Table = {
  name: 'image_builds', key: ['image', 'build_id'],
  cols: ['image', 'build_id', 'state', 'state_time', 'builder', 'builder_id', 'formats', 'username', 'created_at', 'ready_at',
    'duration_s', 'deleted_at', 'updated_at'],
};
const B_CREATED = 8;
const B_READY = 9;
const UPLOADS: Table = {
  name: 'image_uploads', key: ['image', 'build_id', 'provider', 'upload_id'],
  cols: ['image', 'build_id', 'provider', 'upload_id', 'state', 'state_time', 'external_id', 'external_name', 'format',
    'username', 'created_at', 'ready_at', 'duration_s', 'deleted_at', 'updated_at'],
};
const U_CREATED = 10;
const U_READY = 11;

function quoteId(engine: Engine, id: string): string {
  return engine === 'mysql' ? `\`${id}\`` : `"${id}"`;
}

/** SQL for "the value this INSERT tried to write" in an upsert's update clause. */
function ex(engine: Engine, col: string): string {
  return engine === 'mysql' ? `VALUES(\`${col}\`)` : `excluded."${col}"`;
}

/** SQL for "the value already in the row" in an upsert's update clause. */
function old(engine: Engine, table: string, col: string): string {
  return engine === 'mysql' ? `\`${col}\`` : `"${table}"."${col}"`;
}

function firstOf(engine: Engine, table: string, col: string): string {
  return `COALESCE(${old(engine, table, col)}, ${ex(engine, col)})`;
}

/** Derived columns of an upserted table: how the stored row and the new values combine. */
function specials(engine: Engine, table: string): Record<string, string> {
  switch (table) {
    case 'nodes':
      return {
        ready_at: firstOf(engine, table, 'ready_at'),
        in_use_at: firstOf(engine, table, 'in_use_at'),
        // a node seen only after creation (launcher restart) keeps the created_time it carries
        created_time: `COALESCE(${ex(engine, 'created_time')}, ${old(engine, table, 'created_time')})`,
      };
    case 'requests':
      return {
        // first: reads the old created_at/fulfilled_at (see updateClause)
        latency_ms: `COALESCE(${old(engine, table, 'latency_ms')}, ROUND((${firstOf(engine, table, 'fulfilled_at')} - ${firstOf(engine, table, 'created_at')}) * 1000))`,
        created_at: firstOf(engine, table, 'created_at'),
        fulfilled_at: firstOf(engine, table, 'fulfilled_at'),
      };
    default:
      return {
        duration_s: `COALESCE(${old(engine, table, 'duration_s')}, ${firstOf(engine, table, 'ready_at')} - ${firstOf(engine, table, 'created_at')})`,
        created_at: firstOf(engine, table, 'created_at'),
        ready_at: firstOf(engine, table, 'ready_at'),
      };
  }
}

/**
 * The update clause of an upsert: every column takes the new value except the derived ones.
 * MySQL evaluates ON DUPLICATE KEY UPDATE assignments left to right and later ones see the
 * updated values, so the derived columns come first and read the old row.
 */
function updateClause(engine: Engine, t: Table): string {
  if (t.onRemoval !== undefined) return t.onRemoval.map((col) => `${quoteId(engine, col)} = ${ex(engine, col)}`).join(', ');
  const key = t.key ?? [];
  const special = specials(engine, t.name);
  const sets: string[] = [];
  for (const [col, sql] of Object.entries(special)) sets.push(`${quoteId(engine, col)} = ${sql}`);
  for (const col of t.cols) {
    if (key.includes(col) || col in special) continue;
    sets.push(`${quoteId(engine, col)} = ${ex(engine, col)}`);
  }
  return sets.join(', ');
}

interface Statements { head: string; tail: string }

/** The fixed parts of each table's INSERT, built once per engine. */
const statementCache = new Map<string, Statements>();

function statements(engine: Engine, t: Table): Statements {
  const k = `${engine}\u0000${t.name}\u0000${t.onRemoval === undefined ? '' : 'removal'}`;
  let st = statementCache.get(k);
  if (st === undefined) {
    const cols = t.cols.map((c) => quoteId(engine, c)).join(', ');
    const into = `INTO ${quoteId(engine, t.name)} (${cols}) VALUES `;
    if (t.key === null) {
      // an event row already written (replayed batch): skipped
      st = engine === 'mysql'
        ? { head: `INSERT IGNORE ${into}`, tail: '' }
        : { head: `INSERT ${into}`, tail: ' ON CONFLICT ("uid") DO NOTHING' };
    } else {
      st = engine === 'mysql'
        ? { head: `INSERT ${into}`, tail: ` ON DUPLICATE KEY UPDATE ${updateClause(engine, t)}` }
        : { head: `INSERT ${into}`, tail: ` ON CONFLICT (${t.key.map((c) => quoteId(engine, c)).join(', ')}) DO UPDATE SET ${updateClause(engine, t)}` };
    }
    statementCache.set(k, st);
  }
  return st;
}

const escape = mysql2.escape as (v: Value) => string;
/** what mysql2's escaper would change in a string */
const NEEDS_ESCAPE = /[\0\b\t\n\r\x1a"'\\]/;

/**
 * One value as MySQL text, exactly as mysql2's escaper writes it; the common cases (null,
 * numbers, plain ids and states) without its type dispatch, which was the launcher's largest
 * cost of recording.
 */
export function sqlValue(v: Value): string {
  if (v === null) return 'NULL';
  if (typeof v === 'number') return String(v);
  return NEEDS_ESCAPE.test(v) ? escape(v) : `'${v}'`;
}

/** The INSERT statements of a table's rows for MySQL, values escaped inline (no bindings). */
function mysqlStatements(t: Table, rows: readonly Row[], out: string[]): void {
  if (rows.length === 0) return;
  const { head, tail } = statements('mysql', t);
  // joined, not concatenated: a statement built with += is a rope of thousands of pieces that
  // the socket write then flattens (slower than the escaping itself)
  const tuples: string[] = [];
  const values: string[] = [];
  for (let i = 0; i < rows.length; i += CHUNK) {
    const end = Math.min(rows.length, i + CHUNK);
    tuples.length = 0;
    for (let r = i; r < end; r++) {
      const row = rows[r] as Row;
      values.length = row.length;
      for (let c = 0; c < row.length; c++) values[c] = sqlValue(row[c] ?? null);
      tuples.push(`(${values.join(', ')})`);
    }
    out.push(head + tuples.join(', ') + tail);
  }
}

/** The raw better-sqlite3 connection of knex's pool, as far as the writer uses it. */
interface SqliteConnection {
  prepare(sql: string): { run(...values: Value[]): unknown };
  transaction(fn: () => void): () => void;
}

type SqliteInsert = ReturnType<SqliteConnection['prepare']>;

/** One-row INSERT statements per connection and table, compiled once. */
const sqliteStatements = new WeakMap<SqliteConnection, Map<string, SqliteInsert>>();

function sqliteInsert(db: SqliteConnection, t: Table): SqliteInsert {
  let byTable = sqliteStatements.get(db);
  if (byTable === undefined) {
    byTable = new Map();
    sqliteStatements.set(db, byTable);
  }
  const key = `${t.name}\u0000${t.onRemoval === undefined ? '' : 'removal'}`;
  let st = byTable.get(key);
  if (st === undefined) {
    const { head, tail } = statements('sqlite', t);
    st = db.prepare(`${head}(${t.cols.map(() => '?').join(', ')})${tail}`);
    byTable.set(key, st);
  }
  return st;
}

/**
 * Run the batch in one transaction on the pooled better-sqlite3 connection, a compiled one-row
 * statement per table run for each row: SQLite has no network round trip to save, and compiling
 * a multi-row statement for every chunk (knex's raw() prepares each time) cost more than the rows.
 */
async function sqliteTransaction(knex: Knex, plan: readonly (readonly [Table, readonly Row[]])[]): Promise<void> {
  const client = knex.client as PoolClient<SqliteConnection>;
  const db = await client.acquireConnection();
  try {
    db.transaction(() => {
      for (const [t, rows] of plan) {
        if (rows.length === 0) continue;
        const st = sqliteInsert(db, t);
        for (const row of rows) st.run(...row);
      }
    })();
  } finally {
    await client.releaseConnection(db);
  }
}

/** The raw mysql2 connection of knex's pool, as far as the writer uses it. */
interface MysqlConnection {
  query(sql: string, cb: (err: Error | null) => void): unknown;
}

/** knex's client: its pool, for a raw connection (knex's own transactions use the same calls). */
interface PoolClient<C> {
  acquireConnection(): Promise<C>;
  releaseConnection(conn: C): Promise<unknown>;
}

function query(conn: MysqlConnection, sql: string): Promise<void> {
  return new Promise((resolve, reject) => {
    conn.query(sql, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * Run statements in one transaction on a pooled connection, straight through mysql2: knex's
 * raw() and mysql2's formatting each scan a statement for placeholders, and a batch's
 * statements are hundreds of kilobytes of values already escaped.
 */
async function mysqlTransaction(knex: Knex, sqls: readonly string[]): Promise<void> {
  const client = knex.client as PoolClient<MysqlConnection>;
  const conn = await client.acquireConnection();
  try {
    await query(conn, 'START TRANSACTION');
    try {
      for (const sql of sqls) await query(conn, sql);
      await query(conn, 'COMMIT');
    } catch (err) {
      await query(conn, 'ROLLBACK').catch(() => undefined);
      throw err;
    }
  } finally {
    await client.releaseConnection(conn);
  }
}

/** The transition time of a state: the object's own state_time when it just took that state. */
function stateAt(stateTime: number | null, at: number): number {
  return stateTime ?? at;
}

interface BatchRows {
  nodeEvents: Row[];
  nodes: Map<string, Row>;
  /** nodes whose only row in the batch is a removal */
  nodesRemoved: Set<string>;
  requestEvents: Row[];
  requests: Map<string, Row>;
  requestsRemoved: Set<string>;
  attempts: Row[];
  builds: Map<string, Row>;
  uploads: Map<string, Row>;
}

function num(v: unknown): number | null {
  return typeof v === 'number' ? v : null;
}

/** A copy of a batch row with its state, deleted and updated columns (at those indexes) set. */
function markedRemoved(prev: Row, [state, deleted, updated]: readonly [number, number, number], to: Value, at: number): Row {
  const row = prev.slice();
  row[state] = to;
  row[deleted] = at;
  row[updated] = at;
  return row;
}

function addNode(b: BatchRows, e: NodeEvent): void {
  const n = e.node;
  if (e.transition) {
    b.nodeEvents.push([e.uid, n.id, n.provider, n.pool, n.label, e.from, e.to, e.at, n.state_time, e.launcher, e.reason]);
  }
  const prev = b.nodes.get(n.id);
  if (e.removed && prev !== undefined) {
    // removed after an earlier change in this batch: that row, marked deleted
    b.nodes.set(n.id, markedRemoved(prev, [N_STATE, N_DELETED, N_UPDATED], n.state, e.at));
    return;
  }
  if (e.removed) b.nodesRemoved.add(n.id);
  else b.nodesRemoved.delete(n.id);
  // every snapshot field by name: a snapshot read back from the spill file may lack some
  const snap = n as unknown as Record<string, Value | undefined>;
  const row: Row = new Array<Value>(NODES.cols.length);
  for (let i = 0; i < NODE_FIELDS.length; i++) row[i] = snap[NODE_FIELDS[i] as string] ?? null;
  // the first time within the batch wins, like the COALESCE against the stored row
  row[N_READY] = num(prev?.[N_READY]) ?? (!e.removed && n.state === 'ready' ? stateAt(n.state_time, e.at) : null);
  row[N_IN_USE] = num(prev?.[N_IN_USE]) ?? (!e.removed && n.state === 'in-use' ? stateAt(n.state_time, e.at) : null);
  row[N_IN_USE + 1] = e.removed ? e.at : null;
  row[N_IN_USE + 2] = e.at;
  b.nodes.set(n.id, row);
}

function addRequest(b: BatchRows, e: RequestEvent): void {
  const r = e.request;
  if (e.transition) b.requestEvents.push([e.uid, r.id, e.from, e.to, e.at, r.state_time, e.launcher, e.reason]);
  const prev = b.requests.get(r.id);
  if (e.removed && prev !== undefined) {
    b.requests.set(r.id, markedRemoved(prev, [R_STATE, R_DELETED, R_UPDATED], r.state, e.at));
    return;
  }
  if (e.removed) b.requestsRemoved.add(r.id);
  else b.requestsRemoved.delete(r.id);
  const createdAt = num(prev?.[R_CREATED]) ?? r.created_time ?? e.at;
  const fulfilledAt = num(prev?.[R_FULFILLED]) ?? (!e.removed && r.state === 'fulfilled' ? stateAt(r.state_time, e.at) : null);
  b.requests.set(r.id, [
    r.id, r.requestor, r.priority, r.relative_priority, r.labels, r.nodes, r.provider, r.reuse ? 1 : 0, r.state,
    r.state_time, r.declined_by, e.launcher, createdAt, fulfilledAt,
    fulfilledAt !== null ? Math.max(0, Math.round((fulfilledAt - createdAt) * 1000)) : null,
    e.removed ? e.at : null, e.at,
  ]);
}

function addAttempt(b: BatchRows, e: LaunchAttemptEvent): void {
  b.attempts.push([e.uid, e.node_id, e.provider, e.pool, e.label, e.attempt, e.started_at, e.ended_at, e.result, e.error, e.launcher]);
}

function addBuild(b: BatchRows, e: BuildEvent): void {
  const key = `${e.image}\u0000${e.build_id}`;
  const prev = b.builds.get(key);
  const createdAt = num(prev?.[B_CREATED]) ?? (e.state === 'building' ? stateAt(e.state_time, e.at) : e.at);
  const readyAt = num(prev?.[B_READY]) ?? (!e.removed && e.state === 'ready' ? stateAt(e.state_time, e.at) : null);
  b.builds.set(key, [
    e.image, e.build_id, e.state, e.state_time, e.builder, e.builder_id, e.formats, e.username, createdAt, readyAt,
    readyAt !== null ? Math.max(0, readyAt - createdAt) : null, e.removed ? e.at : null, e.at,
  ]);
}

function addUpload(b: BatchRows, e: UploadEvent): void {
  const key = `${e.image}\u0000${e.build_id}\u0000${e.provider}\u0000${e.upload_id}`;
  const prev = b.uploads.get(key);
  const createdAt = num(prev?.[U_CREATED]) ?? (e.state === 'uploading' ? stateAt(e.state_time, e.at) : e.at);
  const readyAt = num(prev?.[U_READY]) ?? (!e.removed && e.state === 'ready' ? stateAt(e.state_time, e.at) : null);
  b.uploads.set(key, [
    e.image, e.build_id, e.provider, e.upload_id, e.state, e.state_time, e.external_id, e.external_name, e.format,
    e.username, createdAt, readyAt, readyAt !== null ? Math.max(0, readyAt - createdAt) : null, e.removed ? e.at : null, e.at,
  ]);
}

/** The rows of a batch, and apart from them those that only record a removal. */
function split(rows: Map<string, Row>, removedOnly: ReadonlySet<string>): [Row[], Row[]] {
  if (removedOnly.size === 0) return [[...rows.values()], []];
  const full: Row[] = [];
  const removed: Row[] = [];
  for (const [id, row] of rows) (removedOnly.has(id) ? removed : full).push(row);
  return [full, removed];
}

/** Write events (in order) in one transaction. Throws the driver's error; the caller retries. */
export async function writeBatch(knex: Knex, engine: Engine, events: readonly RecorderEvent[]): Promise<void> {
  if (events.length === 0) return;
  const b: BatchRows = {
    nodeEvents: [], nodes: new Map(), nodesRemoved: new Set(), requestEvents: [], requests: new Map(),
    requestsRemoved: new Set(), attempts: [], builds: new Map(), uploads: new Map(),
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
  const [nodes, nodesRemoved] = split(b.nodes, b.nodesRemoved);
  const [requests, requestsRemoved] = split(b.requests, b.requestsRemoved);
  const plan: [Table, readonly Row[]][] = [
    [NODE_EVENTS, b.nodeEvents], [REQUEST_EVENTS, b.requestEvents], [ATTEMPTS, b.attempts],
    [NODES, nodes], [NODES_REMOVED, nodesRemoved], [REQUESTS, requests], [REQUESTS_REMOVED, requestsRemoved],
    [BUILDS, [...b.builds.values()]], [UPLOADS, [...b.uploads.values()]],
  ];
  if (engine === 'mysql') {
    const sqls: string[] = [];
    for (const [t, rows] of plan) mysqlStatements(t, rows, sqls);
    await mysqlTransaction(knex, sqls);
    return;
  }
  await sqliteTransaction(knex, plan);
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
 * objects deleted before it. In slices, so no statement holds locks for long; after `budgetMs`
 * it stops at the end of a slice (`complete` false: call again for the rest), so a first
 * pruning of a large history never holds the recorder's writes back for long.
 */
export async function pruneHistory(
  knex: Knex, cutoff: number, slice = 2000, budgetMs = Infinity,
): Promise<{ deleted: number; complete: boolean }> {
  const plan: [string, string, string][] = [
    ['node_events', 'id', 'at'],
    ['request_events', 'id', 'at'],
    ['launch_attempts', 'id', 'started_at'],
    ['history_gaps', 'id', 'recorded_at'],
    ['nodes', 'id', 'deleted_at'],
    ['requests', 'id', 'deleted_at'],
  ];
  const until = Date.now() + budgetMs;
  let deleted = 0;
  let slices = 0;
  for (const [table, key, col] of plan) {
    for (;;) {
      // (one slice that deletes at least, whatever the budget: each call makes progress)
      if (slices > 0 && Date.now() >= until) return { deleted, complete: false };
      const ids: Record<string, string | number>[] = await knex(table).where(col, '<', cutoff).select(key).limit(slice);
      if (ids.length === 0) break;
      slices += 1;
      const values = ids.map((r) => r[key]).filter((v): v is string | number => v !== undefined);
      deleted += await knex(table).whereIn(key, values).delete();
      if (ids.length < slice) break;
    }
  }
  deleted += await knex('image_builds').where('deleted_at', '<', cutoff).delete();
  deleted += await knex('image_uploads').where('deleted_at', '<', cutoff).delete();
  return { deleted, complete: true };
}
