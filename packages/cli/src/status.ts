// The data behind Nodepool's listing commands (`nodepool list`, `image-list`, ...) and the
// launcher's web API, which serve the same rows: one object per row keyed by the web API's JSON
// keys, plus the column titles of the text tables. Reads go straight to ZooKeeper (no cache),
// with bounded parallelism so that 10,000 nodes list in well under a second.
import { formatAge } from '@nodepool-ts/core/util';
import { nodeFromData, requestFromData } from '@nodepool-ts/core/model';
import type { Node, NodeState } from '@nodepool-ts/core/model';
import { LOCK_CHILD, READ_CONCURRENCY, mapLimit, paths } from '@nodepool-ts/core/zk';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import type { Column } from './table.js';
import { pythonRepr } from './util.js';

// ---------------------------------------------------------------------------------------------
// nodes

export const NODE_COLUMNS = [
  { key: 'id', title: 'ID' },
  { key: 'provider', title: 'Provider' },
  { key: 'label', title: 'Label' },
  { key: 'server_id', title: 'Server ID' },
  { key: 'public_ipv4', title: 'Public IPv4' },
  { key: 'ipv6', title: 'IPv6' },
  { key: 'state', title: 'State' },
  { key: 'age', title: 'Age' },
  { key: 'locked', title: 'Locked' },
  { key: 'pool', title: 'Pool' },
  { key: 'hostname', title: 'Hostname' },
  { key: 'private_ipv4', title: 'Private IPv4' },
  { key: 'AZ', title: 'AZ' },
  { key: 'connection_port', title: 'Port' },
  { key: 'launcher', title: 'Launcher' },
  { key: 'allocated_to', title: 'Allocated To' },
  { key: 'hold_job', title: 'Hold Job' },
  { key: 'comment', title: 'Comment' },
] as const satisfies readonly Column[];
export type NodeKey = (typeof NODE_COLUMNS)[number]['key'];

/** `nodepool list` shows the first nine columns; `--detail` all eighteen. */
export const NODE_LIST_FIELDS: readonly NodeKey[] = NODE_COLUMNS.slice(0, 9).map((c) => c.key);

export type LockStatus = 'locked' | 'unlocked';

export interface NodeRow {
  id: string;
  provider: string | null;
  label: string[];
  server_id: string | null;
  public_ipv4: string | null;
  ipv6: string | null;
  state: NodeState;
  /** `DD:HH:MM:SS` — a string in the web API's JSON too */
  age: string;
  locked: LockStatus;
  pool: string | null;
  hostname: string | null;
  private_ipv4: string | null;
  AZ: string | null;
  connection_port: number | Record<string, unknown>;
  launcher: string | null;
  allocated_to: string | null;
  hold_job: string | null;
  comment: string | null;
}

export function nodeRow(node: Node & { id: string }, locked: LockStatus, now: number): NodeRow {
  return {
    id: node.id,
    provider: node.provider,
    label: node.type,
    server_id: node.external_id,
    public_ipv4: node.public_ipv4,
    ipv6: node.public_ipv6,
    state: node.state,
    age: formatAge(node.state_time, now),
    locked,
    pool: node.pool,
    hostname: node.hostname,
    private_ipv4: node.private_ipv4,
    AZ: node.az,
    connection_port: node.connection_port,
    launcher: node.launcher,
    allocated_to: node.allocated_to,
    hold_job: node.hold_job,
    comment: node.comment,
  };
}

/** A row as table cells: what Python's str() would print for each value. */
export function nodeRowCells(row: NodeRow): Record<NodeKey, string | string[] | number | null> {
  const port = row.connection_port;
  // the row itself when it has nothing to convert (no copy per row of a 10,000-node listing)
  return typeof port === 'number' ? row as Record<NodeKey, string | string[] | number | null>
    : { ...row, connection_port: pythonRepr(port) };
}

/**
 * Whether node `id` is locked, for display.
 *
 * Nodepool's CLI asks by trying a non-blocking acquire: it creates its own ephemeral-sequential
 * contender and succeeds exactly when no contender with a lower sequence exists — and since ours
 * is created last, that is exactly when the lock dir had no contender at all. Reading the lock
 * dir's children gives the same answer from the same kind of snapshot, in one read instead of
 * four writes (ensure dir, create, list, delete), and without the side effect of creating lock
 * dirs for nodes nobody ever locked. The real try-acquire (zk.lockNode) is kept for `delete` and
 * `hold`, which must actually hold the lock.
 */
export async function nodeLockStatus(zk: ZooKeeper, id: string): Promise<LockStatus> {
  return (await zk.nodeLockHasContenders(id)) ? 'locked' : 'unlocked';
}

/** Node ids in ZooKeeper's children order, which is the row order of Nodepool's listings. */
async function nodeIdsUnsorted(zk: ZooKeeper): Promise<string[]> {
  return zk.getChildren(paths.nodesRoot);
}

export interface NodeListOptions {
  /** only this node (an unknown id gives an empty list) */
  nodeId?: string | null;
  /** float Unix seconds the ages are computed against */
  now: number;
  /** only nodes of this provider */
  provider?: string | null;
  /** reads in flight (default READ_CONCURRENCY) */
  concurrency?: number;
}

/** Rows for `nodepool list`, in ZooKeeper's children order; vanished or empty znodes skipped. */
export async function nodeList(zk: ZooKeeper, opts: NodeListOptions): Promise<NodeRow[]> {
  const ids = opts.nodeId ? [opts.nodeId] : await nodeIdsUnsorted(zk);
  const rows = await mapLimit(ids, opts.concurrency ?? READ_CONCURRENCY, async (id) => {
    const got = await zk.getDataStat(paths.node(id));
    if (got === null) return null;
    const node = nodeFromData(id, got.data);
    if (node === null) return null;
    if (opts.provider && node.provider !== opts.provider) return null;
    // A node znode without children has no lock dir, so nobody can hold its lock: that saves
    // the second read for every node that was never locked.
    const locked = got.stat.numChildren === 0 ? 'unlocked' : await nodeLockStatus(zk, id);
    return nodeRow(node as Node & { id: string }, locked, opts.now);
  });
  return rows.filter((r): r is NodeRow => r !== null);
}

/** Nodes of a provider (children order), as Nodepool's getProviderNodes. */
export async function providerNodes(zk: ZooKeeper, provider: string): Promise<(Node & { id: string })[]> {
  const ids = await nodeIdsUnsorted(zk);
  const nodes = await mapLimit(ids, READ_CONCURRENCY, async (id) => {
    const node = nodeFromData(id, await zk.getData(paths.node(id)));
    return node !== null && node.provider === provider ? { ...node, id } : null;
  });
  return nodes.filter((n): n is Node & { id: string } => n !== null);
}

// ---------------------------------------------------------------------------------------------
// requests

export const REQUEST_COLUMNS = [
  { key: 'id', title: 'Request ID' },
  { key: 'relative_priority', title: 'Priority' },
  { key: 'state', title: 'State' },
  { key: 'requestor', title: 'Requestor' },
  { key: 'node_types', title: 'Node Types' },
  { key: 'nodes', title: 'Nodes' },
  { key: 'declined_by', title: 'Declined By' },
] as const satisfies readonly Column[];
export type RequestKey = (typeof REQUEST_COLUMNS)[number]['key'];

export interface RequestRow {
  id: string;
  relative_priority: number;
  state: string;
  requestor: string | null;
  node_types: string[];
  nodes: string[];
  declined_by: string[];
}

/** Rows for `nodepool request-list`, sorted by request id like Nodepool. */
export async function requestList(zk: ZooKeeper): Promise<RequestRow[]> {
  const ids = await zk.getNodeRequestIds();
  const rows = await mapLimit(ids, READ_CONCURRENCY, async (id): Promise<RequestRow | null> => {
    const req = requestFromData(id, await zk.getData(paths.request(id)));
    if (req === null) return null;
    return {
      id,
      relative_priority: req.relative_priority,
      state: req.state,
      requestor: req.requestor,
      node_types: req.node_types,
      nodes: req.nodes,
      declined_by: req.declined_by,
    };
  });
  return rows.filter((r): r is RequestRow => r !== null);
}

// ---------------------------------------------------------------------------------------------
// images

export const DIB_IMAGE_COLUMNS = [
  { key: 'id', title: 'ID' },
  { key: 'image', title: 'Image' },
  { key: 'builder', title: 'Builder' },
  { key: 'formats', title: 'Formats' },
  { key: 'state', title: 'State' },
  { key: 'age', title: 'Age' },
] as const satisfies readonly Column[];
export type DibImageKey = (typeof DIB_IMAGE_COLUMNS)[number]['key'];

export interface DibImageRow {
  /** `<image>-<build id>` */
  id: string;
  image: string;
  builder: string | null;
  formats: string[];
  state: string;
  /** int(state_time): Unix seconds, as the web API's JSON has it */
  age: number;
}

export const IMAGE_COLUMNS = [
  { key: 'id', title: 'Build ID' },
  { key: 'upload_id', title: 'Upload ID' },
  { key: 'provider', title: 'Provider' },
  { key: 'image', title: 'Image' },
  { key: 'external_name', title: 'Provider Image Name' },
  { key: 'external_id', title: 'Provider Image ID' },
  { key: 'state', title: 'State' },
  { key: 'age', title: 'Age' },
] as const satisfies readonly Column[];
export type ImageKey = (typeof IMAGE_COLUMNS)[number]['key'];

export interface ImageRow {
  /** build id */
  id: string;
  upload_id: string;
  provider: string;
  image: string;
  external_name: string | null;
  external_id: string | null;
  state: string;
  /** int(state_time) */
  age: number;
}

/**
 * The text tables show the age of an image row as DD:HH:MM:SS of the TRUNCATED state_time
 * (Nodepool stores int(state_time) in the row and formats it later), so ages can be up to a
 * second older than the float state_time would give.
 */
export function imageAge(ageSeconds: number, now: number): string {
  return formatAge(ageSeconds, now);
}

// Builds and uploads are listed in ZooKeeper's children order, like Nodepool (the ZK layer's
// getBuildIds/getUploadIds sort, which its other callers want).
async function unsortedChildren(zk: ZooKeeper, path: string): Promise<string[]> {
  return (await zk.getChildren(path)).filter((c) => c !== LOCK_CHILD);
}

async function imageBuildIds(zk: ZooKeeper): Promise<{ image: string; buildId: string }[]> {
  const images = await zk.getImageNames();
  const perImage = await mapLimit(images, READ_CONCURRENCY, async (image) =>
    (await unsortedChildren(zk, paths.builds(image))).map((buildId) => ({ image, buildId })));
  return perImage.flat();
}

/**
 * Rows for `nodepool dib-image-list`: images sorted, builds in children order. The builds of an
 * image paused with `image-pause` show the state `paused`, as in Nodepool 4+.
 */
export async function dibImageList(zk: ZooKeeper): Promise<DibImageRow[]> {
  const builds = await imageBuildIds(zk);
  const images = [...new Set(builds.map((b) => b.image))];
  const pausedFlags = await mapLimit(images, READ_CONCURRENCY, (image) => zk.isImagePaused(image));
  const paused = new Set(images.filter((_, i) => pausedFlags[i]));
  const rows = await mapLimit(builds, READ_CONCURRENCY, async ({ image, buildId }): Promise<DibImageRow | null> => {
    const build = await zk.getBuild(image, buildId);
    if (build === null) return null;
    return {
      id: `${image}-${buildId}`,
      image,
      builder: build.builder,
      formats: build.formats,
      state: paused.has(image) ? 'paused' : build.state,
      age: Math.trunc(build.state_time),
    };
  });
  return rows.filter((r): r is DibImageRow => r !== null);
}

/** Rows for `nodepool image-list`: image → build → provider → upload. */
export async function imageList(zk: ZooKeeper): Promise<ImageRow[]> {
  const builds = await imageBuildIds(zk);
  const perBuild = await mapLimit(builds, READ_CONCURRENCY, async ({ image, buildId }) =>
    (await zk.getBuildProviders(image, buildId)).map((provider) => ({ image, buildId, provider })));
  const perProvider = await mapLimit(perBuild.flat(), READ_CONCURRENCY, async (b) =>
    (await unsortedChildren(zk, paths.uploads(b.image, b.buildId, b.provider))).map((uploadId) => ({ ...b, uploadId })));
  const rows = await mapLimit(perProvider.flat(), READ_CONCURRENCY, async (u): Promise<ImageRow | null> => {
    const upload = await zk.getImageUpload(u.image, u.buildId, u.provider, u.uploadId);
    if (upload === null) return null;
    return {
      id: u.buildId,
      upload_id: u.uploadId,
      provider: u.provider,
      image: u.image,
      external_name: upload.external_name,
      external_id: upload.external_id,
      state: upload.state,
      age: Math.trunc(upload.state_time),
    };
  });
  return rows.filter((r): r is ImageRow => r !== null);
}

export const IMAGE_STATUS_COLUMNS = [
  { key: 'image', title: 'Image' },
  { key: 'paused', title: 'Paused' },
  { key: 'build_request', title: 'Build Request' },
  { key: 'build_request_age', title: 'Build Request Age' },
] as const satisfies readonly Column[];

export interface ImageStatusRow {
  image: string;
  /** paused with `image-pause` (a `pause: true` in the config is not shown here, as in Nodepool) */
  paused: boolean;
  /** an `image-build` request waiting for a builder (`pending`) or being built (`building`) */
  build_request: 'pending' | 'building' | null;
  /** int(creation time of the request): Unix seconds */
  build_request_age: number | null;
}

/** Rows for `nodepool image-status`: every image in ZooKeeper, sorted. */
export async function imageStatus(zk: ZooKeeper): Promise<ImageStatusRow[]> {
  const images = await zk.getImageNames();
  return mapLimit(images, READ_CONCURRENCY, async (image): Promise<ImageStatusRow> => {
    const [paused, request] = await Promise.all([zk.isImagePaused(image), zk.getBuildRequest(image)]);
    return {
      image,
      paused,
      build_request: request === null ? null : request.pending ? 'pending' : 'building',
      build_request_age: request === null ? null : Math.trunc(request.createdAt),
    };
  });
}

/** image-status rows as table cells: Python's True/False, an empty cell for no request (Nodepool 4+). */
export function imageStatusCells(row: ImageStatusRow, now: number): Record<keyof ImageStatusRow, string> {
  return {
    image: row.image,
    paused: row.paused ? 'True' : 'False',
    build_request: row.build_request ?? '',
    build_request_age: row.build_request_age === null ? '' : imageAge(row.build_request_age, now),
  };
}

/** Build ids per image that have data for `provider` (Nodepool's getProviderBuilds). */
export async function providerBuilds(zk: ZooKeeper, provider: string): Promise<Map<string, string[]>> {
  const builds = await imageBuildIds(zk);
  const has = await mapLimit(builds, READ_CONCURRENCY, async ({ image, buildId }) =>
    (await zk.getBuildProviders(image, buildId)).includes(provider));
  const result = new Map<string, string[]>();
  builds.forEach(({ image, buildId }, i) => {
    if (!has[i]) return;
    const list = result.get(image) ?? [];
    list.push(buildId);
    result.set(image, list);
  });
  return result;
}

// ---------------------------------------------------------------------------------------------
// labels

export const LABEL_COLUMNS = [{ key: 'label', title: 'Label' }] as const satisfies readonly Column[];

/**
 * Union of the labels registered launchers support (3.x registrations and later Nodepool's pool
 * components: a 3.x CLI reads the first, a later one the second). Nodepool iterates a Python set (an order
 * that changes from run to run); we sort, so repeated calls and diffs are stable.
 */
export async function labelList(zk: ZooKeeper): Promise<{ label: string }[]> {
  const labels = new Set<string>();
  for (const launcher of await zk.getLauncherPools()) {
    for (const label of launcher.supported_labels) labels.add(label);
  }
  return [...labels].sort().map((label) => ({ label }));
}
