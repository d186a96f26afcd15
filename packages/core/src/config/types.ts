// Typed view of nodepool.yaml after loading and validation (Nodepool 3.x schema, §5 of the
// protocol document). YAML keys are kebab-case; here they are camelCase. `Infinity` stands for
// "unlimited" wherever Nodepool uses math.inf.

export interface ZooKeeperServer {
  host: string;
  port: number;
  chroot: string | null;
}

export interface Label {
  name: string;
  minReady: number;
  maxReadyAge: number;
  /** seed-era: script run on the node over SSH once it is ready (relative to scriptDir if set). */
  readyScript: string | null;
}

export interface DiskImage {
  name: string;
  elements: string[];
  release: string;
  envVars: Record<string, string>;
  formats: string[];
  rebuildAge: number;
  pause: boolean;
  username: string;
  buildTimeout: number;
  /** `delete-after-upload`: local files of a format go once every provider using it has the build uploaded */
  deleteAfterUpload: boolean;
  /** `keep-formats`: formats kept on disk even so */
  keepFormats: string[];
  /** `python-path` / `shell-type` of nodes booted from it, for Zuul; null = unset */
  pythonPath: string | null;
  shellType: string | null;
}

export interface WebAppConfig {
  port: number;
  listenAddress: string;
  /** `webapp.leases`: the lease API's limits the operator set (the rest keep their defaults) */
  leases: LeaseLimitsConfig;
}

/** `webapp.leases` keys, camel-cased; TTLs and waits in seconds. */
export interface LeaseLimitsConfig {
  minTtl?: number;
  maxTtl?: number;
  defaultTtl?: number;
  maxNodesPerLease?: number;
  maxNodesPerToken?: number;
  maxWait?: number;
  rateBurst?: number;
  ratePerMinute?: number;
}

export interface CronConfig {
  cleanup: string | null;
  check: string | null;
  imageUpdate: string | null;
}

/** Fault injection for the fake driver (beyond Nodepool): every failure path is testable. */
export interface FakeFaults {
  /** milliseconds a server takes to become ACTIVE (YAML `boot-delay` is in seconds, like every Nodepool duration) */
  bootDelay: number;
  /** probability (0..1) that createServer throws a retryable API error */
  createFailureRate: number;
  /** probability (0..1) that a created server goes to ERROR instead of ACTIVE */
  errorRate: number;
  /** probability (0..1) that any API call fails with an HTTP-500-like error */
  apiErrorRate: number;
  /** when true, createServer reports "quota exceeded" */
  quotaExceeded: boolean;
  /** probability (0..1) that deleteServer fails */
  deleteFailureRate: number;
  /** milliseconds deleteServer takes (YAML `delete-delay` is in seconds) */
  deleteDelay: number;
}

export interface FakeQuota {
  instances: number;
  cores: number;
  ram: number;
}

export interface PoolLabelBase {
  name: string;
}

export interface CloudPoolLabel extends PoolLabelBase {
  diskimage: string | null;
  cloudImage: string | null;
  minRam: number | null;
  flavorName: string | null;
  keyName: string | null;
  consoleLog: boolean;
  bootFromVolume: boolean;
  volumeSize: number;
  instanceProperties: Record<string, string>;
  /** `dynamic-instance-properties`: values are format strings over `request` (id, labels, requestor, event_id, ...) */
  dynamicInstanceProperties: Record<string, string>;
  userdata: string | null;
}

export interface CloudPool {
  name: string;
  /** the pool's `priority`, overriding its provider's; null = unset */
  priority: number | null;
  maxServers: number;
  maxCores: number;
  maxRam: number;
  ignoreProviderQuota: boolean;
  availabilityZones: string[];
  networks: string[];
  securityGroups: string[];
  autoFloatingIp: boolean;
  hostKeyChecking: boolean;
  nodeAttributes: Record<string, unknown> | null;
  labels: CloudPoolLabel[];
}

export interface ProviderDiskImage {
  name: string;
  pause: boolean;
  configDrive: boolean | null;
  connectionType: string;
  connectionPort: number;
  meta: Record<string, string>;
}

export interface CloudImage {
  name: string;
  configDrive: boolean | null;
  imageId: string | null;
  imageName: string | null;
  username: string | null;
  connectionType: string;
  connectionPort: number;
  /** image-id, else image-name, else name */
  externalName: string;
  /** `python-path` / `shell-type` of nodes booted from it, for Zuul; null = unset */
  pythonPath: string | null;
  shellType: string | null;
}

/**
 * `launch-circuit-breaker` (nodepool-ts, not in Nodepool): after `failures` launches in a row
 * failed, the provider launches nothing for `cooldown` seconds (requests needing a launch are
 * declined; READY nodes are still handed out), then tries one launch; each failed trial doubles
 * the wait up to `maxCooldown`. A successful launch closes it.
 */
export interface LaunchCircuitBreaker {
  failures: number;
  cooldown: number;
  maxCooldown: number;
}

interface ProviderCommon {
  name: string;
  maxConcurrency: number;
  /** `priority` (Nodepool 6.1+): pools of lower values are offered requests first; null = unset */
  priority: number | null;
}

export interface OpenStackProvider extends ProviderCommon {
  driver: 'openstack';
  cloud: string;
  regionName: string | null;
  bootTimeout: number;
  launchTimeout: number;
  launchRetries: number;
  /** `launch-circuit-breaker`; null = off (Nodepool's behaviour) */
  launchCircuitBreaker: LaunchCircuitBreaker | null;
  /** seconds between API calls (Nodepool's `rate`) */
  rate: number;
  hostnameFormat: string;
  imageNameFormat: string;
  /** `post-upload-hook` (Nodepool 3.11+): run after each upload; non-zero = the upload failed */
  postUploadHook: string | null;
  /** `image-upload-timeout` (Nodepool 9.1, seconds, default 3600) */
  imageUploadTimeout: number;
  /** `port-cleanup-interval` (seconds a DOWN port of ours waits before deletion; 0 = never); null = the driver's default */
  portCleanupInterval: number | null;
  cleanFloatingIps: boolean;
  /** upload format of this cloud (clouds.yaml `image_format`, default qcow2) */
  imageFormat: string;
  /** the clouds.yaml entry named by `cloud` (part of the provider: a changed cloud is a changed provider) */
  cloudConfig: CloudConfig;
  diskimages: ProviderDiskImage[];
  cloudImages: CloudImage[];
  pools: CloudPool[];
}

export interface FakeProvider extends ProviderCommon {
  driver: 'fake';
  /** clouds.yaml-like cloud name recorded on nodes; "fake" by default */
  cloud: string;
  regionName: string | null;
  bootTimeout: number;
  launchTimeout: number;
  launchRetries: number;
  /** `launch-circuit-breaker`; null = off (Nodepool's behaviour) */
  launchCircuitBreaker: LaunchCircuitBreaker | null;
  rate: number;
  hostnameFormat: string;
  imageNameFormat: string;
  /** `post-upload-hook` (Nodepool 3.11+): run after each upload; non-zero = the upload failed */
  postUploadHook: string | null;
  /** `image-upload-timeout` (Nodepool 9.1, seconds, default 3600) */
  imageUploadTimeout: number;
  /** clouds.yaml `image_format` of `cloud` when such an entry exists, else qcow2 */
  imageFormat: string;
  /** the clouds.yaml entry named by `cloud`, if any (the fake cloud needs none) */
  cloudConfig: CloudConfig | null;
  diskimages: ProviderDiskImage[];
  cloudImages: CloudImage[];
  pools: CloudPool[];
  /** availability zones the fake cloud offers */
  azs: string[];
  quota: FakeQuota;
  faults: FakeFaults;
  /** where the fake cloud keeps its servers and images so they survive a restart; null = memory */
  stateFile: string | null;
  /** flavors the fake cloud offers (name, vcpus, ram MB) */
  flavors: { name: string; id: string; vcpus: number; ram: number }[];
}

export interface StaticNode {
  name: string;
  labels: string[];
  username: string;
  timeout: number;
  hostKey: string[];
  connectionPort: number;
  connectionType: string;
  maxParallelJobs: number;
  /** `host-key-checking` (default true): false = the host is never contacted to check it (Nodepool) */
  hostKeyChecking: boolean;
  /** `python-path` / `shell-type`, passed to Zuul on the node when set */
  pythonPath: string | null;
  shellType: string | null;
}

export interface StaticPool {
  name: string;
  /** the pool's `priority`, overriding its provider's; null = unset */
  priority: number | null;
  maxServers: number;
  nodeAttributes: Record<string, unknown> | null;
  nodes: StaticNode[];
  /** label names offered by this pool (union of its nodes' labels) */
  labels: { name: string }[];
}

export interface StaticProvider extends ProviderCommon {
  driver: 'static';
  pools: StaticPool[];
}

/**
 * A label of a metastatic pool (Nodepool 5.0+): its nodes are slots of a backing node, a node of
 * `backingLabel` requested from another provider; `maxParallelJobs` slots per backing node.
 */
export interface MetastaticPoolLabel extends PoolLabelBase {
  backingLabel: string;
  maxParallelJobs: number;
  /** seconds an idle backing node is kept for new nodes before it is released (default 60) */
  graceTime: number;
  /** seconds a backing node is kept at least, counted from its request (default 0) */
  minRetentionTime: number;
  /** seconds after which a backing node takes no new nodes and goes once idle; null = no limit */
  maxAge: number | null;
  /** scan the node's host keys on every slot allocation (default: the pool's, itself false) */
  hostKeyChecking: boolean;
}

export interface MetastaticPool {
  name: string;
  /** the pool's `priority`, overriding its provider's; null = unset */
  priority: number | null;
  maxServers: number;
  hostKeyChecking: boolean;
  /** over the backing node's attributes (key by key) on every node */
  nodeAttributes: Record<string, unknown> | null;
  labels: MetastaticPoolLabel[];
}

export interface MetastaticProvider extends ProviderCommon {
  driver: 'metastatic';
  /** seconds a host-key scan of a new node may take (Nodepool's code default, 120) */
  bootTimeout: number;
  /** seconds a node may wait for its backing node (default 3600) */
  launchTimeout: number;
  launchRetries: number;
  pools: MetastaticPool[];
}

export type Provider = OpenStackProvider | FakeProvider | StaticProvider | MetastaticProvider;
export type Pool = CloudPool | StaticPool | MetastaticPool;
/** A provider that boots servers in a cloud and takes image uploads. */
export type CloudProvider = OpenStackProvider | FakeProvider;

export function isCloudProvider(p: Provider): p is CloudProvider {
  return p.driver === 'openstack' || p.driver === 'fake';
}

/** PEM files for TLS to ZooKeeper: the client's certificate and key, and the CA of the servers' */
export interface ZooKeeperTls {
  cert: string;
  key: string;
  ca: string;
}

export interface Config {
  /** absolute path of the file the config was loaded from */
  file: string;
  zookeeperServers: ZooKeeperServer[];
  /** `zookeeper-timeout` (seconds, Nodepool 6.0+) as ms: the session timeout asked of ZooKeeper (default 10 s) */
  zookeeperTimeoutMs: number;
  /** `zookeeper-tls` (the secure file's wins): absolute paths of the PEM files; null = plain TCP */
  zookeeperTls: ZooKeeperTls | null;
  labels: Map<string, Label>;
  providers: Map<string, Provider>;
  diskimages: Map<string, DiskImage>;
  webapp: WebAppConfig;
  elementsDir: string | null;
  imagesDir: string | null;
  buildLogDir: string;
  buildLogRetention: number;
  maxHoldAge: number;
  /**
   * `tenant-resource-limits` (Nodepool 4.3+): tenant name -> the most its nodes (those with its
   * `tenant_name`, over all providers) may take; Infinity where unset
   */
  tenantResourceLimits: Map<string, { instances: number; cores: number; ram: number }>;
  cron: CronConfig;
  /** database URI (`dburi`/`database`, from the config or the secure file); null = embedded SQLite */
  databaseUri: string | null;
  /** days of history the database keeps (`history-retention-days`); null = keep everything */
  historyRetentionDays: number | null;
  /**
   * directory for launcher state (SQLite file, spill files): env NODEPOOL_STATE_DIR, else the
   * top-level `state-dir` key, else /var/lib/nodepool for a config under /etc, else
   * `<config dir>/state` (see load.ts)
   */
  stateDir: string;
  /** path of the SSH private key used for ready-scripts and static checks */
  privateKey: string | null;
  scriptDir: string | null;
  /** clouds.yaml contents, keyed by cloud name (only what the providers reference) */
  clouds: Map<string, CloudConfig>;
  /** absolute path of the secure file merged in, if any */
  secureFile: string | null;
  /** absolute path of the clouds.yaml read, if any */
  cloudsFile: string | null;
}

export interface CloudConfig {
  name: string;
  authUrl: string | null;
  username: string | null;
  password: string | null;
  projectName: string | null;
  projectId: string | null;
  userDomainName: string | null;
  projectDomainName: string | null;
  regionName: string | null;
  /** clouds.yaml `regions` (names); empty when the cloud does not list them */
  regions: string[];
  imageFormat: string;
  /** the raw clouds.yaml entry, for driver-specific keys */
  raw: Record<string, unknown>;
  /** file the entry came from */
  file: string;
}
