// What the recorder queues: small plain snapshots of the objects at the time of a change, so the
// caller may keep mutating its Node after the call, and so a queued event can be written to the
// spill file as one JSON line and read back unchanged.
import type { BuildState, ImageBuild, ImageUpload, Node, NodeRequest, NodeState, RequestState, UploadState } from '../model/types.js';

/** Columns of the `nodes` row a change leaves behind. */
export interface NodeSnapshot {
  id: string;
  provider: string | null;
  pool: string | null;
  label: string | null;
  cloud: string | null;
  region: string | null;
  az: string | null;
  external_id: string | null;
  hostname: string | null;
  public_ipv4: string | null;
  private_ipv4: string | null;
  public_ipv6: string | null;
  interface_ip: string | null;
  image_id: string | null;
  state: NodeState;
  state_time: number | null;
  allocated_to: string | null;
  launcher: string | null;
  hold_job: string | null;
  comment: string | null;
  hold_expiration: number | null;
  created_time: number | null;
}

export interface RequestSnapshot {
  id: string;
  requestor: string | null;
  priority: number | null;
  relative_priority: number;
  labels: string;
  nodes: string;
  provider: string | null;
  reuse: boolean;
  state: RequestState;
  state_time: number | null;
  declined_by: string;
  /** the requestor's `created_time` when it sent one (newer Zuul) */
  created_time: number | null;
}

interface EventBase {
  /** `<run>-<seq>`, unique across recorder runs */
  uid: string;
  /** recorder clock, Unix seconds */
  at: number;
}

export interface NodeEvent extends EventBase {
  kind: 'node';
  /** the node after the change, or before it when the znode was removed */
  node: NodeSnapshot;
  removed: boolean;
  from: NodeState | null;
  to: NodeState | null;
  /** whether the change is a transition worth a `node_events` row (not just new IPs) */
  transition: boolean;
  launcher: string | null;
  reason: string | null;
}

export interface RequestEvent extends EventBase {
  kind: 'request';
  request: RequestSnapshot;
  removed: boolean;
  from: RequestState | null;
  to: RequestState | null;
  transition: boolean;
  launcher: string | null;
  reason: string | null;
}

export interface LaunchAttemptEvent extends EventBase {
  kind: 'attempt';
  node_id: string;
  provider: string | null;
  pool: string | null;
  label: string | null;
  attempt: number;
  started_at: number;
  ended_at: number;
  result: string;
  error: string | null;
  launcher: string | null;
}

export interface BuildEvent extends EventBase {
  kind: 'build';
  image: string;
  build_id: string;
  state: BuildState;
  state_time: number | null;
  builder: string | null;
  builder_id: string | null;
  formats: string;
  username: string | null;
  removed: boolean;
}

export interface UploadEvent extends EventBase {
  kind: 'upload';
  image: string;
  build_id: string;
  provider: string;
  upload_id: string;
  state: UploadState;
  state_time: number | null;
  external_id: string | null;
  external_name: string | null;
  format: string | null;
  username: string | null;
  removed: boolean;
}

export type RecorderEvent = NodeEvent | RequestEvent | LaunchAttemptEvent | BuildEvent | UploadEvent;

/** Text columns are TEXT in MySQL (64 KiB); reasons and errors are cut well below. */
export const MAX_TEXT = 4000;

export function clip(text: string | null | undefined, max = MAX_TEXT): string | null {
  if (text === null || text === undefined) return null;
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

function finite(n: unknown): number | null {
  return typeof n === 'number' && Number.isFinite(n) ? n : null;
}

function str(v: unknown, max = 255): string | null {
  return typeof v === 'string' ? clip(v, max) : null;
}

export function snapshotNode(n: Node, id: string): NodeSnapshot {
  return {
    id,
    provider: str(n.provider, 191),
    pool: str(n.pool, 191),
    label: Array.isArray(n.type) ? clip(n.type.join(','), 1024) : str(n.type, 1024),
    cloud: str(n.cloud, 191),
    region: str(n.region, 191),
    az: str(n.az, 191),
    external_id: str(n.external_id),
    hostname: str(n.hostname),
    public_ipv4: str(n.public_ipv4, 64),
    private_ipv4: str(n.private_ipv4, 64),
    public_ipv6: str(n.public_ipv6, 64),
    interface_ip: str(n.interface_ip, 64),
    image_id: str(n.image_id, 512),
    state: n.state,
    state_time: finite(n.state_time),
    allocated_to: str(n.allocated_to, 64),
    launcher: str(n.launcher),
    hold_job: str(n.hold_job, 512),
    comment: clip(n.comment),
    hold_expiration: finite(n.hold_expiration) === null ? null : Math.trunc(n.hold_expiration ?? 0),
    created_time: finite(n.created_time),
  };
}

/** `<priority>-<sequence>` → priority; null for ids of another shape. */
export function requestPriority(id: string): number | null {
  const dash = id.indexOf('-');
  if (dash <= 0) return null;
  let p = 0;
  for (let i = 0; i < dash; i++) {
    const d = id.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return null;
    p = p * 10 + d;
  }
  return p <= 2_147_483_647 ? p : null; // an INT column
}

export function snapshotRequest(r: NodeRequest, id: string): RequestSnapshot {
  const created = r.extra?.created_time;
  return {
    id,
    requestor: str(r.requestor),
    priority: requestPriority(id),
    relative_priority: Number.isInteger(r.relative_priority) ? r.relative_priority : 0,
    labels: clip(r.node_types.join(','), 2048) ?? '',
    nodes: clip(r.nodes.join(','), 60_000) ?? '',
    provider: str(r.provider, 191),
    reuse: r.reuse !== false,
    state: r.state,
    state_time: finite(r.state_time),
    declined_by: clip(r.declined_by.join(','), 60_000) ?? '',
    created_time: finite(created),
  };
}

export function buildFields(b: ImageBuild): Omit<BuildEvent, 'uid' | 'at' | 'kind' | 'removed' | 'image' | 'build_id'> {
  return {
    state: b.state,
    state_time: finite(b.state_time),
    builder: str(b.builder),
    builder_id: str(b.builder_id, 64),
    formats: [...b.formats].sort().join(','),
    username: str(b.username),
  };
}

export function uploadFields(u: ImageUpload): Omit<UploadEvent, 'uid' | 'at' | 'kind' | 'removed' | 'image' | 'build_id' | 'provider' | 'upload_id'> {
  return {
    state: u.state,
    state_time: finite(u.state_time),
    external_id: str(u.external_id),
    external_name: str(u.external_name),
    format: str(u.format, 32),
    username: str(u.username),
  };
}

const KINDS = new Set(['node', 'request', 'attempt', 'build', 'upload']);

/** Validate a line read back from the spill file (it may be truncated or hand-edited). */
export function parseEventLine(line: string): RecorderEvent | null {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const e = v as Record<string, unknown>;
  if (typeof e.uid !== 'string' || typeof e.at !== 'number' || typeof e.kind !== 'string' || !KINDS.has(e.kind)) return null;
  if (e.kind === 'node' && (typeof e.node !== 'object' || e.node === null)) return null;
  if (e.kind === 'request' && (typeof e.request !== 'object' || e.request === null)) return null;
  return v as RecorderEvent;
}
