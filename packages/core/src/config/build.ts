// From schema-checked YAML values to the typed Config: defaults of the §5 tables, relative paths,
// and the cross references Nodepool only discovers when it loads (a pool label naming an unknown
// label, diskimage or cloud-image; a static host listed twice). Each problem becomes a ConfigIssue
// at the line of the offending key.
import type { ConfigIssue } from './errors.js';
import type {
  FakeProviderIn, MetastaticProviderIn, OpenStackProviderIn, StaticProviderIn, TopLevelIn, ValidateOnlyDriver,
} from './schema.js';
import { formatKeyPath, isRecord, issueAt, type KeyPath, type YamlSource } from './source.js';
import type {
  CloudConfig, CloudImage, CloudPool, CloudPoolLabel, DiskImage, FakeFaults, FakeProvider, Label,
  LaunchCircuitBreaker, OpenStackProvider, Provider, ProviderDiskImage, StaticNode, StaticPool, StaticProvider,
} from './types.js';
import { isCloudProvider, type MetastaticPool, type MetastaticPoolLabel, type MetastaticProvider } from './types.js';

export type ProviderIn =
  | { driver: 'openstack'; index: number; data: OpenStackProviderIn }
  | { driver: 'fake'; index: number; data: FakeProviderIn }
  | { driver: 'static'; index: number; data: StaticProviderIn }
  | { driver: 'metastatic'; index: number; data: MetastaticProviderIn }
  | { driver: ValidateOnlyDriver; index: number; data: Record<string, unknown> };

export interface BuildContext {
  src: YamlSource;
  /** clouds.yaml entries; `cloudsChecked` false = do not require them (config-validate) */
  clouds: Map<string, CloudConfig>;
  cloudsChecked: boolean;
  /** explains a missing cloud: which clouds.yaml was read, or where we looked */
  cloudsWhere: string;
  /** resolves a data path (images, logs, fake state) against the state dir */
  dataPath: (p: string) => string;
  /** resolves an input path (scripts, hooks) against the config file's directory */
  inputPath: (p: string) => string;
  issues: ConfigIssue[];
  /** abstract diskimages (parents only): named when something refers to one as an image */
  abstractDiskimages?: Set<string>;
}

const UNLIMITED = Infinity;
const DEFAULT_PORTS: Record<string, number> = { ssh: 22, winrm: 5986 };

function report(ctx: BuildContext, path: KeyPath, message: string): void {
  ctx.issues.push(issueAt(ctx.src, path, message));
}

/** Track names in one namespace; report the second definition, naming the first. */
class Registry {
  private readonly seen = new Map<string, KeyPath>();
  constructor(private readonly ctx: BuildContext, private readonly what: string) {}

  add(name: string, path: KeyPath): boolean {
    const first = this.seen.get(name);
    if (first !== undefined) {
      report(this.ctx, path, `duplicate ${this.what} "${name}" (first defined at ${formatKeyPath(first)})`);
      return false;
    }
    this.seen.set(name, path);
    return true;
  }
}

export function buildLabels(ctx: BuildContext, top: TopLevelIn): Map<string, Label> {
  const labels = new Map<string, Label>();
  const names = new Registry(ctx, 'label');
  (top.labels ?? []).forEach((l, i) => {
    if (!names.add(l.name, ['labels', i, 'name'])) return;
    labels.set(l.name, {
      name: l.name,
      minReady: l['min-ready'] ?? 0,
      maxReadyAge: l['max-ready-age'] ?? 0,
      readyScript: l['ready-script'] ?? null,
    });
  });
  return labels;
}

type DiskImageIn = NonNullable<TopLevelIn['diskimages']>[number];

function unknownDiskimage(ctx: BuildContext, name: string): string {
  return ctx.abstractDiskimages?.has(name)
    ? `diskimage "${name}" is abstract (only a parent of other diskimages): it is never built`
    : `diskimage "${name}" is not defined in the top-level diskimages`;
}

/**
 * One diskimage's settings laid over what it inherits, as Nodepool's DiskImage.setFromConfig:
 * elements append, env-vars merge, every other setting replaces the inherited one when it is set
 * to something (so `pause: false` does not unpause a paused parent, as in Nodepool).
 */
function inherit(base: DiskImageIn | null, d: DiskImageIn): DiskImageIn {
  const set = <K extends keyof DiskImageIn>(k: K): Partial<DiskImageIn> =>
    (d[k] ? { [k]: d[k] } : base?.[k] !== undefined ? { [k]: base[k] } : {});
  return {
    name: d.name,
    elements: [...(base?.elements ?? []), ...(d.elements ?? [])],
    'env-vars': { ...(base?.['env-vars'] ?? {}), ...(d['env-vars'] ?? {}) },
    ...set('release'), ...set('rebuild-age'), ...set('pause'), ...set('username'), ...set('build-timeout'),
    ...set('python-path'), ...set('shell-type'),
    ...(d.formats?.length ? { formats: d.formats } : base?.formats !== undefined ? { formats: base.formats } : {}),
    ...(d['keep-formats']?.length ? { 'keep-formats': d['keep-formats'] }
      : base?.['keep-formats'] !== undefined ? { 'keep-formats': base['keep-formats'] } : {}),
    // (false overrides a parent's true here, as in Nodepool)
    ...(d['delete-after-upload'] !== undefined ? { 'delete-after-upload': d['delete-after-upload'] }
      : base?.['delete-after-upload'] !== undefined ? { 'delete-after-upload': base['delete-after-upload'] } : {}),
  };
}

export function buildDiskImages(ctx: BuildContext, top: TopLevelIn): Map<string, DiskImage> {
  const images = new Map<string, DiskImage>();
  const names = new Registry(ctx, 'diskimage');
  const all = new Map<string, { d: DiskImageIn; i: number }>();
  (top.diskimages ?? []).forEach((d, i) => {
    if (names.add(d.name, ['diskimages', i, 'name'])) all.set(d.name, { d, i });
  });
  ctx.abstractDiskimages = new Set([...all.values()].filter(({ d }) => d.abstract === true).map(({ d }) => d.name));
  for (const { d: own, i } of all.values()) {
    if (own.abstract === true) continue;
    // the parents, nearest first; an unknown parent or a loop is reported at the image's `parent`
    const chain: DiskImageIn[] = [];
    let bad = false;
    for (let p = own.parent; p !== undefined; p = all.get(p)?.d.parent) {
      const parent = all.get(p)?.d;
      if (parent === undefined) {
        report(ctx, ['diskimages', i, 'parent'], `unknown parent diskimage "${p}"`);
        bad = true;
        break;
      }
      if (parent === own || chain.includes(parent)) {
        report(ctx, ['diskimages', i, 'parent'], `diskimage parents loop: ${[own, ...chain, parent].map((x) => x.name).join(' -> ')}`);
        bad = true;
        break;
      }
      chain.push(parent);
    }
    if (bad) continue;
    const d = [...chain.reverse(), own].reduce<DiskImageIn | null>((base, x) => inherit(base, x), null) ?? own;
    images.set(d.name, {
      name: d.name,
      elements: d.elements ?? [],
      // DIB_RELEASE is an env var: `release: 21` must become "21"
      release: d.release === undefined ? '' : String(d.release),
      envVars: { ...(d['env-vars'] ?? {}) },
      formats: [...(d.formats ?? [])],
      rebuildAge: d['rebuild-age'] ?? 86400,
      pause: d.pause ?? false,
      username: d.username ?? 'zuul',
      buildTimeout: d['build-timeout'] ?? 8 * 60 * 60,
      deleteAfterUpload: d['delete-after-upload'] ?? false,
      keepFormats: [...(d['keep-formats'] ?? [])],
      pythonPath: d['python-path'] ?? null,
      shellType: d['shell-type'] ?? null,
    });
  }
  return images;
}

function stringMap(input: Record<string, string | number | boolean> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(input ?? {})) out[k] = String(v);
  return out;
}

/** Nova accepts at most 5 metadata items of at most 255 characters; Nodepool drops bad meta whole. */
function imageMeta(input: Record<string, string | number | boolean> | undefined): Record<string, string> {
  const meta = stringMap(input);
  const entries = Object.entries(meta);
  if (entries.length > 5 || entries.some(([k, v]) => k.length > 255 || v.length > 255)) return {};
  return meta;
}

const DEFAULT_FAKE_FLAVORS: FakeProvider['flavors'] = [
  // the two flavors of Nodepool's fake cloud: `min-ram: 8192` resolves to 4 vCPUs / 8192 MB
  { name: 'Fake Flavor', id: 'f1', vcpus: 4, ram: 8192 },
  { name: 'Unreal Flavor', id: 'f2', vcpus: 4, ram: 8192 },
];

function placeholderCloud(name: string): CloudConfig {
  return {
    name, authUrl: null, username: null, password: null, projectName: null, projectId: null,
    userDomainName: null, projectDomainName: null, regionName: null, regions: [],
    imageFormat: 'qcow2', raw: {}, file: '',
  };
}

type CloudIn = OpenStackProviderIn | FakeProviderIn;

/** Keys shared by the OpenStack and fake drivers, with their cross references. */
function buildCloudParts(
  ctx: BuildContext,
  p: CloudIn,
  base: KeyPath,
  labels: Map<string, Label>,
  diskimages: Map<string, DiskImage>,
): Pick<OpenStackProvider, 'diskimages' | 'cloudImages' | 'pools'> {
  const diskimageNames = new Registry(ctx, 'provider diskimage');
  const providerImages: ProviderDiskImage[] = [];
  (p.diskimages ?? []).forEach((d, i) => {
    const path = [...base, 'diskimages', i, 'name'];
    if (!diskimageNames.add(d.name, path)) return;
    if (!diskimages.has(d.name)) report(ctx, path, unknownDiskimage(ctx, d.name));
    const connectionType = d['connection-type'] ?? 'ssh';
    providerImages.push({
      name: d.name,
      pause: d.pause ?? false,
      configDrive: d['config-drive'] ?? null,
      connectionType,
      connectionPort: d['connection-port'] ?? DEFAULT_PORTS[connectionType] ?? 22,
      meta: imageMeta(d.meta),
    });
  });

  const cloudImageNames = new Registry(ctx, 'cloud-image');
  const cloudImages: CloudImage[] = [];
  (p['cloud-images'] ?? []).forEach((c, i) => {
    if (!cloudImageNames.add(c.name, [...base, 'cloud-images', i, 'name'])) return;
    const connectionType = c['connection-type'] ?? 'ssh';
    const imageId = c['image-id'] ?? null;
    const imageName = c['image-name'] ?? null;
    cloudImages.push({
      name: c.name,
      configDrive: c['config-drive'] ?? null,
      imageId,
      imageName,
      username: c.username ?? null,
      connectionType,
      connectionPort: c['connection-port'] ?? DEFAULT_PORTS[connectionType] ?? 22,
      externalName: imageId ?? imageName ?? c.name,
      pythonPath: c['python-path'] ?? null,
      shellType: c['shell-type'] ?? null,
    });
  });

  const poolNames = new Registry(ctx, 'pool');
  const pools: CloudPool[] = [];
  (p.pools ?? []).forEach((pool, i) => {
    const poolPath = [...base, 'pools', i];
    poolNames.add(pool.name, [...poolPath, 'name']);
    const labelNames = new Registry(ctx, 'label in this pool');
    const poolLabels: CloudPoolLabel[] = [];
    (pool.labels ?? []).forEach((l, j) => {
      const labelPath = [...poolPath, 'labels', j];
      if (!labelNames.add(l.name, [...labelPath, 'name'])) return;
      if (!labels.has(l.name)) {
        report(ctx, [...labelPath, 'name'], `label "${l.name}" is not defined in the top-level labels`);
      }
      if (l.diskimage !== undefined) {
        if (!diskimages.has(l.diskimage)) {
          report(ctx, [...labelPath, 'diskimage'], unknownDiskimage(ctx, l.diskimage));
        } else if (!providerImages.some((d) => d.name === l.diskimage)) {
          report(ctx, [...labelPath, 'diskimage'],
            `diskimage "${l.diskimage}" is not in the diskimages of provider "${p.name}" (it is never uploaded there)`);
        }
      }
      if (l['cloud-image'] !== undefined && !cloudImages.some((c) => c.name === l['cloud-image'])) {
        const known = cloudImages.map((c) => c.name).join(', ');
        report(ctx, [...labelPath, 'cloud-image'],
          `cloud-image "${l['cloud-image']}" does not exist in provider "${p.name}" (cloud-images: ${known === '' ? 'none' : known})`);
      }
      poolLabels.push({
        name: l.name,
        diskimage: l.diskimage ?? null,
        cloudImage: l['cloud-image'] ?? null,
        minRam: l['min-ram'] ?? null,
        flavorName: l['flavor-name'] ?? null,
        keyName: l['key-name'] ?? null,
        consoleLog: l['console-log'] ?? false,
        bootFromVolume: l['boot-from-volume'] ?? false,
        volumeSize: l['volume-size'] ?? 50,
        instanceProperties: stringMap(l['instance-properties']),
        dynamicInstanceProperties: stringMap(l['dynamic-instance-properties']),
        userdata: l.userdata ?? null,
      });
    });
    pools.push({
      name: pool.name,
      priority: pool.priority ?? null,
      maxServers: pool['max-servers'] ?? UNLIMITED,
      maxCores: pool['max-cores'] ?? UNLIMITED,
      maxRam: pool['max-ram'] ?? UNLIMITED,
      ignoreProviderQuota: pool['ignore-provider-quota'] ?? false,
      availabilityZones: pool['availability-zones'] ?? [],
      networks: pool.networks ?? [],
      securityGroups: pool['security-groups'] ?? [],
      autoFloatingIp: pool['auto-floating-ip'] ?? true,
      hostKeyChecking: pool['host-key-checking'] ?? true,
      nodeAttributes: pool['node-attributes'] ?? null,
      labels: poolLabels,
    });
  });
  return { diskimages: providerImages, cloudImages, pools };
}

/** `launch-circuit-breaker` (nodepool-ts): null when absent; seconds, failures as counted launches. */
function launchCircuitBreaker(ctx: BuildContext, p: CloudIn, base: KeyPath): LaunchCircuitBreaker | null {
  const b = p['launch-circuit-breaker'];
  if (b === undefined) return null;
  const cooldown = b.cooldown ?? 60;
  const maxCooldown = b['max-cooldown'] ?? Math.max(900, cooldown);
  if (maxCooldown < cooldown) {
    report(ctx, [...base, 'launch-circuit-breaker', 'max-cooldown'],
      `max-cooldown (${maxCooldown}) of provider "${p.name}" is shorter than its cooldown (${cooldown})`);
  }
  return { failures: b.failures ?? 5, cooldown, maxCooldown };
}

function cloudTimings(ctx: BuildContext, p: CloudIn, base: KeyPath): Pick<OpenStackProvider,
  'bootTimeout' | 'launchTimeout' | 'launchRetries' | 'rate' | 'hostnameFormat' | 'imageNameFormat' | 'postUploadHook'
  | 'imageUploadTimeout' | 'launchCircuitBreaker'> {
  const hook = p['post-upload-hook'];
  return {
    launchCircuitBreaker: launchCircuitBreaker(ctx, p, base),
    // a bare command name is looked up on PATH when run (as Nodepool's subprocess does)
    postUploadHook: hook === undefined ? null : hook.includes('/') ? ctx.inputPath(hook) : hook,
    imageUploadTimeout: p['image-upload-timeout'] ?? 3600,
    bootTimeout: p['boot-timeout'] ?? 60,
    launchTimeout: p['launch-timeout'] ?? 3600,
    launchRetries: p['launch-retries'] ?? 3,
    rate: p.rate ?? 1.0,
    hostnameFormat: p['hostname-format'] ?? '{label.name}-{provider.name}-{node.id}',
    imageNameFormat: p['image-name-format'] ?? '{image_name}-{timestamp}',
  };
}

export function buildOpenStackProvider(
  ctx: BuildContext, p: OpenStackProviderIn, index: number,
  labels: Map<string, Label>, diskimages: Map<string, DiskImage>,
): OpenStackProvider {
  const base = ['providers', index];
  let cloud = ctx.clouds.get(p.cloud) ?? null;
  if (cloud === null) {
    if (ctx.cloudsChecked) {
      report(ctx, [...base, 'cloud'], `cloud "${p.cloud}" of provider "${p.name}" not found: ${ctx.cloudsWhere}`);
    }
    cloud = placeholderCloud(p.cloud);
  }
  const regionName = p['region-name'] ?? null;
  if (ctx.cloudsChecked && regionName !== null && cloud.regions.length > 0 && !cloud.regions.includes(regionName)) {
    report(ctx, [...base, 'region-name'],
      `region "${regionName}" of provider "${p.name}" is not a region of cloud "${p.cloud}" (regions: ${cloud.regions.join(', ')})`);
  }
  return {
    driver: 'openstack',
    name: p.name,
    maxConcurrency: p['max-concurrency'] ?? -1,
    priority: p.priority ?? null,
    cloud: p.cloud,
    regionName,
    ...cloudTimings(ctx, p, base),
    cleanFloatingIps: p['clean-floating-ips'] ?? false,
    portCleanupInterval: p['port-cleanup-interval'] ?? null,
    imageFormat: cloud.imageFormat,
    cloudConfig: cloud,
    ...buildCloudParts(ctx, p, base, labels, diskimages),
  };
}

export function buildFakeProvider(
  ctx: BuildContext, p: FakeProviderIn, index: number,
  labels: Map<string, Label>, diskimages: Map<string, DiskImage>,
): FakeProvider {
  const cloudName = p.cloud ?? 'fake';
  // Nodepool's fake skips clouds.yaml validation: an entry is used when present, never required.
  const cloud = ctx.clouds.get(cloudName) ?? null;
  const f = p.faults ?? {};
  const faults: FakeFaults = {
    bootDelay: Math.round((f['boot-delay'] ?? 0) * 1000),
    createFailureRate: f['create-failure-rate'] ?? 0,
    errorRate: f['error-rate'] ?? 0,
    apiErrorRate: f['api-error-rate'] ?? 0,
    quotaExceeded: f['quota-exceeded'] ?? false,
    deleteFailureRate: f['delete-failure-rate'] ?? 0,
    deleteDelay: Math.round((f['delete-delay'] ?? 0) * 1000),
  };
  const stateFile = p['state-file'];
  return {
    driver: 'fake',
    name: p.name,
    maxConcurrency: p['max-concurrency'] ?? -1,
    priority: p.priority ?? null,
    cloud: cloudName,
    regionName: p['region-name'] ?? 'fake-region',
    ...cloudTimings(ctx, p, ['providers', index]),
    imageFormat: cloud?.imageFormat ?? 'qcow2',
    cloudConfig: cloud,
    ...buildCloudParts(ctx, p, ['providers', index], labels, diskimages),
    azs: p.azs ?? ['az1'],
    quota: {
      instances: p.quota?.instances ?? UNLIMITED,
      cores: p.quota?.cores ?? UNLIMITED,
      ram: p.quota?.ram ?? UNLIMITED,
    },
    faults,
    stateFile: stateFile === undefined ? null : ctx.dataPath(stateFile),
    flavors: p.flavors?.map((fl) => ({ name: fl.name, id: fl.id ?? fl.name, vcpus: fl.vcpus, ram: fl.ram }))
      ?? DEFAULT_FAKE_FLAVORS.map((fl) => ({ ...fl })),
  };
}

/** Where a static host was first seen, to name both pools when it appears twice. */
export type StaticHosts = Map<string, { path: KeyPath; provider: string; pool: string }>;

export function buildStaticProvider(
  ctx: BuildContext, p: StaticProviderIn, index: number, labels: Map<string, Label>, hosts: StaticHosts,
): StaticProvider {
  const base = ['providers', index];
  const poolNames = new Registry(ctx, 'pool');
  const pools: StaticPool[] = [];
  (p.pools ?? []).forEach((pool, i) => {
    const poolPath = [...base, 'pools', i];
    poolNames.add(pool.name, [...poolPath, 'name']);
    const nodes: StaticNode[] = [];
    const offered: string[] = [];
    (pool.nodes ?? []).forEach((n, j) => {
      const nodePath = [...poolPath, 'nodes', j];
      const first = hosts.get(n.name);
      if (first !== undefined) {
        report(ctx, [...nodePath, 'name'],
          `static node "${n.name}" is already defined in provider "${first.provider}" pool "${first.pool}" `
          + `(${formatKeyPath(first.path)}); it is also listed in provider "${p.name}" pool "${pool.name}": `
          + 'static node names must be unique across all static pools');
      } else {
        hosts.set(n.name, { path: nodePath, provider: p.name, pool: pool.name });
      }
      // `labels: "a b"` is a whitespace separated list, as in Nodepool
      const nodeLabels = typeof n.labels === 'string' ? n.labels.split(/\s+/).filter((s) => s !== '') : n.labels;
      nodeLabels.forEach((name, k) => {
        if (!labels.has(name)) {
          const path = typeof n.labels === 'string' ? [...nodePath, 'labels'] : [...nodePath, 'labels', k];
          report(ctx, path, `label "${name}" is not defined in the top-level labels`);
        }
        if (!offered.includes(name)) offered.push(name);
      });
      const hostKey = n['host-key'];
      const connectionType = n['connection-type'] ?? 'ssh';
      nodes.push({
        name: n.name,
        labels: nodeLabels,
        username: n.username ?? 'zuul',
        timeout: n.timeout ?? 5,
        hostKey: hostKey === undefined ? [] : typeof hostKey === 'string' ? [hostKey] : hostKey,
        // Nodepool's static driver defaults to 22 even for winrm
        connectionPort: n['connection-port'] ?? n['ssh-port'] ?? 22,
        connectionType,
        maxParallelJobs: n['max-parallel-jobs'] ?? 1,
        hostKeyChecking: n['host-key-checking'] ?? true,
        pythonPath: n['python-path'] ?? null,
        shellType: n['shell-type'] ?? null,
      });
    });
    pools.push({
      name: pool.name,
      priority: pool.priority ?? null,
      maxServers: pool['max-servers'] ?? UNLIMITED,
      nodeAttributes: pool['node-attributes'] ?? null,
      nodes,
      labels: offered.map((name) => ({ name })),
    });
  });
  return { driver: 'static', name: p.name, maxConcurrency: p['max-concurrency'] ?? -1, priority: p.priority ?? null, pools };
}

export function buildMetastaticProvider(
  ctx: BuildContext, p: MetastaticProviderIn, index: number, labels: Map<string, Label>,
): MetastaticProvider {
  const base = ['providers', index];
  const poolNames = new Registry(ctx, 'pool');
  const pools: MetastaticPool[] = [];
  // Nodepool: every label of one backing label must agree on how backing nodes are used
  const byBacking = new Map<string, { label: MetastaticPoolLabel; path: KeyPath }>();
  p.pools.forEach((pool, i) => {
    const poolPath = [...base, 'pools', i];
    poolNames.add(pool.name, [...poolPath, 'name']);
    const poolHostKeyChecking = pool['host-key-checking'] ?? false;
    const labelNames = new Registry(ctx, 'label in this pool');
    const poolLabels: MetastaticPoolLabel[] = [];
    pool.labels.forEach((l, j) => {
      const labelPath = [...poolPath, 'labels', j];
      if (!labelNames.add(l.name, [...labelPath, 'name'])) return;
      if (!labels.has(l.name)) {
        report(ctx, [...labelPath, 'name'], `label "${l.name}" is not defined in the top-level labels`);
      }
      if (l['backing-label'] === l.name) {
        report(ctx, [...labelPath, 'backing-label'], `label "${l.name}" cannot be its own backing label`);
      }
      const label: MetastaticPoolLabel = {
        name: l.name,
        backingLabel: l['backing-label'],
        maxParallelJobs: l['max-parallel-jobs'] ?? 1,
        graceTime: l['grace-time'] ?? 60,
        minRetentionTime: l['min-retention-time'] ?? 0,
        // Nodepool tests max-age for truth: 0 is no limit
        maxAge: l['max-age'] === undefined || l['max-age'] === 0 ? null : l['max-age'],
        hostKeyChecking: l['host-key-checking'] ?? poolHostKeyChecking,
      };
      if (label.maxAge !== null && label.maxAge < label.minRetentionTime) {
        report(ctx, [...labelPath, 'max-age'],
          `max-age (${label.maxAge}) must be greater than or equal to min-retention-time (${label.minRetentionTime})`);
      }
      const first = byBacking.get(label.backingLabel);
      if (first === undefined) {
        byBacking.set(label.backingLabel, { label, path: labelPath });
      } else if (first.label.maxParallelJobs !== label.maxParallelJobs || first.label.graceTime !== label.graceTime
        || first.label.minRetentionTime !== label.minRetentionTime || first.label.maxAge !== label.maxAge) {
        report(ctx, [...labelPath, 'backing-label'],
          `labels of backing label "${label.backingLabel}" must have identical max-parallel-jobs, grace-time, `
          + `min-retention-time and max-age (they differ from ${formatKeyPath(first.path)})`);
      }
      poolLabels.push(label);
    });
    pools.push({
      name: pool.name,
      priority: pool.priority ?? null,
      maxServers: pool['max-servers'] ?? UNLIMITED,
      hostKeyChecking: poolHostKeyChecking,
      nodeAttributes: pool['node-attributes'] ?? null,
      labels: poolLabels,
    });
  });
  return {
    driver: 'metastatic',
    name: p.name,
    maxConcurrency: p['max-concurrency'] ?? -1,
    priority: p.priority ?? null,
    bootTimeout: p['boot-timeout'] ?? 120,
    launchTimeout: p['launch-timeout'] ?? 3600,
    launchRetries: p['launch-retries'] ?? 3,
    pools,
  };
}

/**
 * A metastatic label's backing nodes are requested like any node: some other provider of this
 * config must offer its `backing-label`, or every backing request would fail.
 */
export function checkBackingLabels(ctx: BuildContext, parsed: readonly ProviderIn[], providers: Map<string, Provider>): void {
  for (const p of parsed) {
    if (p.driver !== 'metastatic') continue;
    p.data.pools.forEach((pool, i) => {
      pool.labels.forEach((l, j) => {
        const backing = l['backing-label'];
        if (backing === l.name) return; // reported already
        const offered = [...providers.values()].some((other) => other.pools.some((op) => op.labels.some((ol) => ol.name === backing)))
          || parsed.some((other) => other.driver !== 'metastatic' && offersLabel(other, backing));
        if (!offered) {
          report(ctx, ['providers', p.index, 'pools', i, 'labels', j, 'backing-label'],
            `backing label "${backing}" of label "${l.name}" is not offered by any provider pool of this configuration`);
        }
      });
    });
  }
}

/** A provider only validated (kubernetes, aws, ...) may still offer a backing label. */
function offersLabel(p: ProviderIn, label: string): boolean {
  const pools = Array.isArray(p.data.pools) ? (p.data.pools as unknown[]) : [];
  return pools.some((pool) => isRecord(pool) && Array.isArray(pool.labels)
    && pool.labels.some((l: unknown) => l === label || (isRecord(l) && l.name === label)));
}

/** Drivers we only validate still must name defined labels (Nodepool fails to load otherwise). */
export function checkValidateOnlyLabels(ctx: BuildContext, p: ProviderIn, labels: Map<string, Label>): void {
  const pools = Array.isArray(p.data.pools) ? p.data.pools : [];
  pools.forEach((pool: unknown, i) => {
    if (!isRecord(pool) || !Array.isArray(pool.labels)) return;
    pool.labels.forEach((l: unknown, j) => {
      const name = typeof l === 'string' ? l : isRecord(l) && typeof l.name === 'string' ? l.name : null;
      if (name === null || labels.has(name)) return;
      const path = typeof l === 'string'
        ? ['providers', p.index, 'pools', i, 'labels', j]
        : ['providers', p.index, 'pools', i, 'labels', j, 'name'];
      report(ctx, path, `label "${name}" is not defined in the top-level labels`);
    });
  });
}

/** Every format a diskimage must be built in: its own plus those of the clouds it is uploaded to. */
export function completeImageFormats(diskimages: Map<string, DiskImage>, providers: Iterable<Provider>): void {
  for (const provider of providers) {
    if (!isCloudProvider(provider)) continue;
    for (const pd of provider.diskimages) {
      const image = diskimages.get(pd.name);
      if (image !== undefined && !image.formats.includes(provider.imageFormat)) image.formats.push(provider.imageFormat);
    }
  }
  // qemu-img needs at least one output format
  for (const image of diskimages.values()) if (image.formats.length === 0) image.formats.push('qcow2');
}
