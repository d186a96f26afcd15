// Nodepool's server metadata (§3.5). The keys are how every launcher, ours and Python's, tells
// its servers from anyone else's: leaked-server cleanup and the unmanaged-quota estimate (§3.6,
// §3.10) read them back, so the names must match Nodepool's exactly.
import type { ServerInfo } from './types.js';

export const META_GROUPS = 'groups';
export const META_PROVIDER = 'nodepool_provider_name';
export const META_NODE_ID = 'nodepool_node_id';
export const META_IMAGE = 'nodepool_image_name';
export const META_LABEL = 'nodepool_node_label';

export interface ServerMetadataInput {
  provider: string;
  nodeId: string;
  /** diskimage name for managed images, cloud-image name otherwise */
  imageName: string;
  label: string;
  /** the label's `instance-properties`; Nodepool's keys win on conflict */
  instanceProperties?: Record<string, string>;
}

export function nodepoolServerMetadata(input: ServerMetadataInput): Record<string, string> {
  return {
    ...(input.instanceProperties ?? {}),
    [META_GROUPS]: `${input.provider},${input.imageName},${input.label}`,
    [META_PROVIDER]: input.provider,
    [META_NODE_ID]: input.nodeId,
    [META_IMAGE]: input.imageName,
    [META_LABEL]: input.label,
  };
}

/** The ZooKeeper node id a server was launched for, if this provider launched it. */
export function ownerNodeId(server: Pick<ServerInfo, 'metadata'>, provider: string): string | null {
  if (server.metadata[META_PROVIDER] !== provider) return null;
  const id = server.metadata[META_NODE_ID];
  return id ? id : null;
}

/**
 * Nodepool's notion of "owned" (§3.6): launched by this provider AND its node still exists in
 * ZooKeeper. Servers failing this count against quota as someone else's.
 */
export function isManagedServer(server: Pick<ServerInfo, 'metadata'>, provider: string,
  knownNodeIds: ReadonlySet<string>): boolean {
  const id = ownerNodeId(server, provider);
  return id !== null && knownNodeIds.has(id);
}

/**
 * Servers this provider launched whose node is gone from ZooKeeper and that are not already on
 * their way out (§3.10): the cleanup worker creates a `deleting` node record for each.
 */
export function leakedServers<S extends Pick<ServerInfo, 'metadata' | 'status'>>(servers: Iterable<S>,
  provider: string, knownNodeIds: ReadonlySet<string>): S[] {
  const out: S[] = [];
  for (const s of servers) {
    if (s.status.toUpperCase() === 'DELETED') continue;
    const id = ownerNodeId(s, provider);
    if (id !== null && !knownNodeIds.has(id)) out.push(s);
  }
  return out;
}
