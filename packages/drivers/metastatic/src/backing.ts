// The backing-node bookkeeping of Nodepool's metastatic driver, as pure data: which slots of which
// backing node hold which node, what is written on the backing node (`user_data`) and on each node
// (`driver_data`, `slot`), and when an idle backing node is released. No I/O here.
import type { MetastaticPoolLabel } from '@nodepool-ts/core/config';
import { PyFloat, pythonJson, type Node } from '@nodepool-ts/core/model';

/**
 * The requestor of a provider's backing-node requests, also its `owner` in a backing node's
 * `user_data` and the identifier of its persistent lock on the backing node (Nodepool's spelling).
 */
export function metastaticOwner(provider: string): string {
  return `NodePool:metastatic:${provider}`;
}

/** What a backing node's `user_data` records (Nodepool's keys: owner, label, slots, failed, launched). */
export interface BackingUserData {
  owner: string;
  /** the metastatic label the backing node serves (not the backing label) */
  label: string;
  slots: number;
  failed: boolean;
  /** float Unix seconds the backing node was asked for */
  launched: number;
}

/** `user_data` text as Nodepool's `json.dumps` writes it (a string inside the node JSON). */
export function encodeUserData(u: BackingUserData): string {
  return pythonJson({ owner: u.owner, label: u.label, slots: u.slots, failed: u.failed, launched: new PyFloat(u.launched) });
}

/**
 * A node's `user_data` read as a backing node's, or null (not JSON, not an object, no `owner`).
 * Missing `failed`/`launched` read as false/0, as Nodepool reads them.
 */
export function decodeUserData(raw: unknown): BackingUserData | null {
  if (typeof raw !== 'string') return null;
  let d: unknown;
  try {
    d = JSON.parse(raw);
  } catch {
    return null;
  }
  if (d === null || typeof d !== 'object' || Array.isArray(d)) return null;
  const o = d as Record<string, unknown>;
  if (typeof o.owner !== 'string' || typeof o.label !== 'string') return null;
  const slots = o.slots;
  if (typeof slots !== 'number' || !Number.isInteger(slots) || slots < 1) return null;
  return {
    owner: o.owner,
    label: o.label,
    slots,
    failed: o.failed === true,
    launched: typeof o.launched === 'number' && Number.isFinite(o.launched) ? o.launched : 0,
  };
}

/** A metastatic node's `driver_data` (Nodepool's keys: metadata, backing_node, slot, node). */
export interface SlotDriverData {
  metadata: { nodepool_node_id: string; nodepool_pool_name: string; nodepool_provider_name: string };
  backing_node: string | null;
  slot: number;
  node: string;
}

/** The backing node and slot a node's `driver_data` names, or null. */
export function slotOf(node: Readonly<Node>): { backingNode: string; slot: number } | null {
  const dd = node.extra['driver_data'];
  if (dd === null || typeof dd !== 'object' || Array.isArray(dd)) return null;
  const o = dd as Record<string, unknown>;
  const bn = o.backing_node;
  const slot = o.slot;
  if (typeof bn !== 'string' || typeof slot !== 'number' || !Number.isInteger(slot) || slot < 0) return null;
  return { backingNode: bn, slot };
}

/** Nodepool's BackingNodeRecord: one backing node (or its pending request) and its slots. */
export class BackingNodeRecord {
  /** the backing node's id once its request is fulfilled and the node is ours */
  nodeId: string | null = null;
  /** the pending backing request's id, until then */
  requestId: string | null = null;
  /** node id per slot; null = free */
  readonly slots: (string | null)[];
  /** takes no new node (max-age reached, a nodescan failed, released); deleted as soon as idle */
  failed = false;
  /** the backing node went away (deleted, or taken from us): its nodes are useless */
  gone = false;
  /** float Unix seconds */
  launched: number;
  lastUsed: number;

  constructor(readonly label: string, slotCount: number, now: number) {
    this.slots = Array.from({ length: Math.max(1, slotCount) }, () => null);
    this.launched = now;
    this.lastUsed = now;
  }

  get slotCount(): number {
    return this.slots.length;
  }

  hasAvailableSlot(): boolean {
    return !this.failed && this.slots.includes(null);
  }

  isEmpty(): boolean {
    return this.slots.every((s) => s === null);
  }

  backs(nodeId: string): boolean {
    return this.slots.includes(nodeId);
  }

  /** The first free slot (or `slot`) for `nodeId`; throws when that slot is taken. */
  allocate(nodeId: string, slot?: number): number {
    const idx = slot ?? this.slots.indexOf(null);
    if (idx < 0 || idx >= this.slots.length) throw new Error(`backing node ${this.nodeId ?? '(requested)'} has no slot ${idx}`);
    const holder = this.slots[idx];
    if (holder !== null && holder !== undefined && holder !== nodeId) {
      throw new Error(`slot ${idx} of backing node ${this.nodeId ?? '(requested)'} is already allocated to node ${holder}`);
    }
    this.slots[idx] = nodeId;
    return idx;
  }

  /** Free the slot of `nodeId`; its index, or -1 when it had none here. */
  deallocate(nodeId: string, now: number): number {
    const idx = this.slots.indexOf(nodeId);
    if (idx < 0) return -1;
    this.slots[idx] = null;
    this.lastUsed = now;
    return idx;
  }

  userData(owner: string): BackingUserData {
    return { owner, label: this.label, slots: this.slotCount, failed: this.failed, launched: this.launched };
  }
}

export type ReleaseDecision =
  | { release: true; reason: string }
  | { release: false; wakeAt: number | null };

/**
 * Nodepool's idle check (run on every cleanup pass): a backing node past `max-age` takes no new
 * nodes; an empty one is released once `grace-time` has passed since its last node went and
 * `min-retention-time` since it was asked for (both 0 for a failed one, or one whose label left
 * the config). `wakeAt`: when the answer may change (float seconds), null when only a slot
 * change can change it. Marks `failed` on the record when max-age is reached.
 */
export function releaseDecision(r: BackingNodeRecord, label: MetastaticPoolLabel | undefined, now: number): ReleaseDecision {
  let grace = 0;
  let minTime = 0;
  let wakeAt: number | null = null;
  if (label !== undefined) {
    grace = label.graceTime;
    minTime = label.minRetentionTime;
    if (label.maxAge !== null) {
      if (now - r.launched > label.maxAge) r.failed = true;
      else wakeAt = r.launched + label.maxAge;
    }
  }
  if (r.failed) {
    grace = 0;
    minTime = 0;
  }
  if (r.requestId !== null && r.nodeId === null) return { release: false, wakeAt: null }; // still being asked for
  if (!r.isEmpty()) return { release: false, wakeAt };
  const idleUntil = r.lastUsed + grace;
  const keepUntil = r.launched + minTime;
  if (now - r.lastUsed > grace && now - r.launched > minTime) {
    const why = r.gone ? 'it went away' : r.failed ? 'it is out of service and idle'
      : label === undefined ? `its label ${r.label} is no longer configured` : `it has been idle for ${Math.round(now - r.lastUsed)} s`;
    return { release: true, reason: why };
  }
  const next = Math.max(idleUntil, keepUntil);
  return { release: false, wakeAt: wakeAt === null ? next : Math.min(wakeAt, next) };
}

/** The resources a metastatic node takes (Nodepool: one instance, nothing else). */
export const SLOT_RESOURCES = Object.freeze({ cores: 0, instances: 1, ram: 0 });

/** `image_id` of every metastatic node (the name of Nodepool's placeholder cloud image). */
export const METASTATIC_IMAGE_ID = 'unused';

/**
 * Fill a node with what Nodepool's metastatic driver copies from its backing node: addresses,
 * cloud/region/az, login (username, port, connection type, python-path, shell-type, host keys),
 * the backing node's attributes under the pool's `node-attributes`, and `driver_data`/`slot`.
 * `external_id` is the node's own id; `hostname` and `host_id` stay unset, as in Nodepool.
 */
export function applyBackingNode(node: Node, backing: Readonly<Node>, slot: number, pool: { name: string; provider: string }): void {
  const id = node.id ?? '';
  node.external_id = id;
  node.interface_ip = backing.interface_ip;
  node.public_ipv4 = backing.public_ipv4;
  node.private_ipv4 = backing.private_ipv4;
  node.public_ipv6 = backing.public_ipv6;
  node.host_id = null;
  node.cloud = backing.cloud;
  node.region = backing.region;
  node.az = backing.az;
  node.resources = { ...SLOT_RESOURCES };
  node.username = backing.username;
  node.connection_port = typeof backing.connection_port === 'object' ? { ...backing.connection_port } : backing.connection_port;
  node.connection_type = backing.connection_type;
  node.host_keys = [...backing.host_keys];
  node.extra['python_path'] = backing.extra['python_path'] ?? null;
  node.extra['shell_type'] = backing.extra['shell_type'] ?? null;
  if (backing.attributes !== null) node.attributes = { ...backing.attributes, ...(node.attributes ?? {}) };
  const dd: SlotDriverData = {
    metadata: { nodepool_node_id: id, nodepool_pool_name: pool.name, nodepool_provider_name: pool.provider },
    backing_node: backing.id,
    slot,
    node: id,
  };
  node.extra['driver_data'] = dd;
  node.extra['slot'] = slot;
}
