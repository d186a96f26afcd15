// Nodepool's ZooKeeper objects (§1.4 of the protocol document). Field names are the exact JSON
// keys Nodepool and Zuul read and write; the object id is the znode name and is never stored.

export const NODE_STATES = [
  'init', 'building', 'testing', 'ready', 'in-use', 'used', 'hold',
  'deleting', 'failed', 'aborted', 'deleted',
] as const;
export type NodeState = (typeof NODE_STATES)[number];

export const REQUEST_STATES = ['requested', 'pending', 'fulfilled', 'failed'] as const;

/** The requestor of the requests a launcher writes to keep `min-ready` nodes of a label (Nodepool's name). */
export const MIN_READY_REQUESTOR = 'NodePool:min-ready';
export type RequestState = (typeof REQUEST_STATES)[number];

export const BUILD_STATES = ['building', 'ready', 'deleting', 'failed'] as const;
export type BuildState = (typeof BUILD_STATES)[number];

export const UPLOAD_STATES = ['uploading', 'ready', 'deleting', 'failed'] as const;
export type UploadState = (typeof UPLOAD_STATES)[number];

export interface NodeResources {
  cores: number;
  instances: number;
  ram: number;
  [key: string]: number;
}

export interface Node {
  id: string | null;
  state: NodeState;
  state_time: number;
  created_time: number | null;
  cloud: string | null;
  provider: string | null;
  pool: string | null;
  type: string[];
  allocated_to: string | null;
  az: string | null;
  region: string | null;
  public_ipv4: string | null;
  private_ipv4: string | null;
  public_ipv6: string | null;
  interface_ip: string | null;
  host_id: string | null;
  /** an int for ssh/winrm; k8s-style drivers store a credentials object here */
  connection_port: number | Record<string, unknown>;
  connection_type: string | null;
  username: string | null;
  host_keys: string[];
  image_id: string | null;
  launcher: string | null;
  external_id: string | null;
  hostname: string | null;
  comment: string | null;
  hold_job: string | null;
  hold_expiration: number | null;
  resources: NodeResources | null;
  attributes: Record<string, unknown> | null;
  /** keys we do not know, kept so that a rewrite preserves them (newer Zuul) */
  extra: Record<string, unknown>;
}

export interface NodeRequest {
  id: string | null;
  state: RequestState;
  state_time: number;
  declined_by: string[];
  node_types: string[];
  nodes: string[];
  reuse: boolean;
  requestor: string | null;
  provider: string | null;
  relative_priority: number;
  /** keys we do not know (event_id, created_time, tenant_name, requestor_data ...), round-tripped */
  extra: Record<string, unknown>;
}

export interface ImageBuild {
  /** build id (sequence), from the path */
  id: string | null;
  /** image name, from the path */
  image: string | null;
  state: BuildState;
  state_time: number;
  builder: string | null;
  builder_id: string | null;
  formats: string[];
  username: string;
}

export interface ImageUpload {
  /** upload id (sequence), from the path */
  id: string | null;
  image: string | null;
  build_id: string | null;
  provider: string | null;
  state: UploadState;
  state_time: number;
  external_id: string | null;
  external_name: string | null;
  format: string | null;
  username: string;
}

export interface LauncherInfo {
  id: string;
  provider_name: string;
  supported_labels: string[];
  /**
   * Provider priority (Nodepool 6.1+; lower is offered requests first). Written, with `paused`,
   * only by pool workers whose launcher config sets `priority`; a 3.x registration has neither.
   */
  priority?: number;
  /** the pool is at capacity and waits for nodes to free up (its requests go elsewhere) */
  paused?: boolean;
  /** the pool's name, when read from a Nodepool 6.1+ pool component (a 3.x registration has none) */
  pool_name?: string;
}
