// The contract between the daemons (launcher, builder) and a cloud. A driver package implements
// ProviderManager; the daemons never see a cloud SDK. Everything is async, and every failure
// leaves the driver as a ProviderError subclass (errors.ts) so callers branch on `kind`.
import type { CloudPoolLabel } from '../config/types.js';

/** Tenant limits or usage; `Infinity` = unlimited (Nova's -1). RAM in MB. */
/** What a cleanup removed, counted as `nodepool.provider.<p>.leaked.<resource>` (Nodepool's names). */
export type LeakedResource = 'instances' | 'ports' | 'floatingips';

export interface QuotaInfo {
  instances: number;
  cores: number;
  ram: number;
}

/** What one node costs against quota; the same numbers are stored as a node's `resources`. */
export interface LabelResources {
  cores: number;
  instances: number;
  ram: number;
}

export const UNLIMITED_QUOTA: Readonly<QuotaInfo> = Object.freeze({
  instances: Infinity, cores: Infinity, ram: Infinity,
});

export const ZERO_USAGE: Readonly<QuotaInfo> = Object.freeze({ instances: 0, cores: 0, ram: 0 });

export interface FlavorInfo {
  id: string;
  name: string;
  vcpus: number;
  /** MB */
  ram: number;
}

/**
 * What to boot from. A managed image is a builder upload, booted by the upload's external id.
 * A cloud image is booted by id when the config gives one, else looked up by name.
 */
export type ServerImage =
  | { kind: 'upload'; externalId: string }
  | { kind: 'cloud'; name: string; id: string | null };

export interface ServerSpec {
  /** hostname from `hostname-format`; also the server name in the cloud */
  name: string;
  image: ServerImage;
  /** resolved beforehand (findFlavor) so quota accounting and the boot use the same flavor */
  flavor: FlavorInfo;
  /** the request's chosen AZ (§3.5); null lets the cloud choose */
  az: string | null;
  keyName: string | null;
  /** network names or ids; the driver resolves names */
  networks: string[];
  securityGroups: string[];
  userdata: string | null;
  bootFromVolume: boolean;
  /** GB, used only with bootFromVolume; the volume is deleted with the server */
  volumeSize: number;
  /** null = the cloud's default */
  configDrive: boolean | null;
  /** nodepoolServerMetadata(...) merged over instance-properties */
  metadata: Record<string, string>;
  /** pool `auto-floating-ip` (default true): attach a floating IP once ACTIVE if the cloud needs one */
  autoFloatingIp?: boolean;
}

/** Nova's statuses we act on; clouds may report others (SHUTOFF, REBUILD, ...). */
export type ServerStatus = 'BUILD' | 'ACTIVE' | 'ERROR' | 'DELETED' | (string & {});

export interface ServerInfo {
  /** the cloud's id; stored as the node's `external_id` */
  id: string;
  name: string;
  status: ServerStatus;
  az: string | null;
  hostId: string | null;
  publicIpv4: string | null;
  privateIpv4: string | null;
  publicIpv6: string | null;
  /**
   * The address Zuul should use (the driver knows which network is reachable, e.g. a floating
   * IP); null ⇒ the launch fails with Nodepool's LaunchNetworkException.
   */
  interfaceIp: string | null;
  flavorId: string | null;
  imageId: string | null;
  /** Nova's fault message for ERROR servers, for the launch failure log */
  fault: string | null;
  metadata: Record<string, string>;
}

export interface ImageInfo {
  /** the cloud's id; stored as the upload's `external_id` */
  id: string;
  name: string;
  /** Glance's status: `active` when bootable; `queued`/`saving` while uploading */
  status: string;
  metadata: Record<string, string>;
  /** bytes, when known */
  size: number | null;
  /** md5 hex as Glance reports it, when known */
  checksum: string | null;
  format: string | null;
}

export interface UploadImageOptions {
  /** from `image-name-format` */
  name: string;
  /** local path of the built image file */
  file: string;
  /** disk format (qcow2, raw, vhd, ...) */
  format: string;
  /** provider diskimage `meta` + nodepool_build_id/nodepool_upload_id/disk_format (§4.5) */
  metadata: Record<string, string>;
  /** from the build's checksum files, so the driver need not re-read a multi-GB file */
  md5?: string;
  sha256?: string;
  onProgress?: (bytes: number, total: number) => void;
  signal?: AbortSignal;
}

/**
 * The parts every provider shares, cloud or not. A static driver (hosts registered as nodes,
 * §3.7) implements this plus its own registration API with `kind: 'static'`; the launcher
 * switches on `kind`.
 */
export interface ProviderLifecycle {
  /** provider name from nodepool.yaml; also the `nodepool_provider_name` metadata value */
  readonly name: string;
  /** the config's `driver` (fake, openstack, static, ...), for logs and stats */
  readonly driver: string;
  /**
   * Connects / loads state. Called once before any other member; the launcher makes a new
   * manager when the provider's config changes instead of restarting this one.
   */
  start(): Promise<void>;
  /**
   * Releases timers, sockets and waiting calls (they reject with ProviderAbortedError) so a
   * reconfigured or stopping daemon exits cleanly. Idempotent.
   */
  stop(): Promise<void>;
}

/** A cloud that boots servers and stores images (OpenStack, fake; later AWS & co). */
export interface ProviderManager extends ProviderLifecycle {
  readonly kind: 'cloud';

  /**
   * AZs a pool without `availability-zones` picks from at random; empty ⇒ AZ null (let the
   * cloud choose). Cached by the driver; a 400 from the cloud clears the cache.
   */
  listAzs(): Promise<string[]>;
  /** Flavors sorted by RAM, the order findFlavor searches. */
  listFlavors(): Promise<FlavorInfo[]>;
  /** The label's flavor by the `min-ram`/`flavor-name` rules (selectFlavor); NotFoundError if none. */
  findFlavor(label: CloudPoolLabel): Promise<FlavorInfo>;
  /** What one node of this label costs, for quota arithmetic and the node's `resources`. */
  resourcesForLabel(label: CloudPoolLabel): Promise<LabelResources>;

  /**
   * Tenant limits (Infinity = unlimited). Cached for MAX_QUOTA_AGE (5 min, §3.6) because
   * quota checks run for every request; invalidateQuotaCache() after a quota failure.
   */
  getQuota(): Promise<QuotaInfo>;
  /** Forget the cached limits, e.g. after a "quota exceeded" launch failure (§3.5). */
  invalidateQuotaCache(): void;
  /**
   * Resources used by servers that are NOT this provider's live nodes — other tenants' users,
   * other providers, and this provider's leaked servers (§3.6). `knownNodeIds` are the ids of
   * this provider's nodes in ZooKeeper. Not cached: the launcher decides how often to ask.
   */
  unmanagedUsage(knownNodeIds: ReadonlySet<string>): Promise<QuotaInfo>;

  /**
   * Starts a boot and returns at once (status usually BUILD). The id is durable in the cloud
   * before this resolves, so a launcher killed right after can find the server as leaked.
   * Throws QuotaExceededError when the cloud refuses for quota.
   */
  createServer(spec: ServerSpec): Promise<ServerInfo>;
  /** One server, or null when the cloud no longer has it (no NotFoundError: absence is data). */
  getServer(id: string): Promise<ServerInfo | null>;
  /**
   * Resolves once the server is ACTIVE (with its floating IP when the spec asked for one).
   * ERROR ⇒ ServerStatusError; gone ⇒ NotFoundError; `timeoutMs` (launch-timeout) elapsed ⇒
   * ProviderTimeoutError; aborted ⇒ ProviderAbortedError.
   */
  waitForServer(id: string, timeoutMs: number, signal?: AbortSignal): Promise<ServerInfo>;
  /** Every server in the tenant, ours or not: leaked-server cleanup and quota need them all. */
  listServers(): Promise<ServerInfo[]>;
  /**
   * Asks the cloud to delete (with its floating IPs and boot volume). Returns once the cloud
   * accepted; the server may linger as DELETED — use waitForServerDeletion. NotFoundError if
   * the server does not exist, which the deleted-node worker treats as success (§3.9).
   */
  deleteServer(id: string): Promise<void>;
  /** Resolves once the server is gone; ProviderTimeoutError after `timeoutMs` (600 s in §3.9). */
  waitForServerDeletion(id: string, timeoutMs: number, signal?: AbortSignal): Promise<void>;
  /** The boot console, logged when a keyscan times out and the label has `console-log`. */
  getConsoleLog?(id: string): Promise<string>;
  /**
   * Driver-specific leftovers besides servers (OpenStack: DOWN ports, unattached floating
   * IPs), run by the cleanup worker every cycle (§3.10). Optional: most clouds have none.
   */
  cleanupLeakedResources?(): Promise<void>;

  /**
   * Uploads a built image and resolves when the cloud reports it usable (Glance `active`).
   * Private to the tenant. The returned id becomes the upload's `external_id`.
   */
  uploadImage(opts: UploadImageOptions): Promise<ImageInfo>;
  /** Deletes by id, or by name when no id matches; NotFoundError if neither exists. */
  deleteImage(nameOrId: string): Promise<void>;
  /** Every image the tenant can see, for builder cleanup of leaked uploads. */
  listImages(): Promise<ImageInfo[]>;
  /**
   * A cloud image by id or name, or null: a label whose cloud-image has no `image-id` is only
   * offered once the image exists in the cloud (§5.5 ready check).
   */
  getCloudImage(nameOrId: string): Promise<ImageInfo | null>;
}

export function addUsage(a: QuotaInfo, b: QuotaInfo): QuotaInfo {
  return { instances: a.instances + b.instances, cores: a.cores + b.cores, ram: a.ram + b.ram };
}
