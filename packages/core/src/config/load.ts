// loadConfig / validateConfig: read nodepool.yaml (+ secure file, + clouds.yaml), check it against
// the §5 schema, resolve cross references and produce the typed Config. Every problem in every
// file is collected before failing, so one run of config-validate shows them all.
import { dirname, join, resolve } from 'node:path';
import { readCloudsYaml, type CloudsResult } from './clouds.js';
import {
  buildDiskImages, buildFakeProvider, buildLabels, buildMetastaticProvider, buildOpenStackProvider, buildStaticProvider,
  checkBackingLabels, checkValidateOnlyLabels, completeImageFormats, type BuildContext, type ProviderIn, type StaticHosts,
} from './build.js';
import { ConfigError, type ConfigIssue } from './errors.js';
import { zodIssues } from './issues.js';
import {
  fakeProviderSchema, isDriverName, metastaticProviderSchema, openstackProviderSchema, providerSchemas, secureSchema,
  staticProviderSchema, topLevelSchema, SUPPORTED_DRIVERS, VALIDATE_ONLY_DRIVERS,
  type SecureIn, type TopLevelIn,
} from './schema.js';
import {
  describeType, isRecord, issueAt, parseYaml, readText, sortIssues, substituteEnv, type YamlSource,
} from './source.js';
import { isCloudProvider, type Config, type LeaseLimitsConfig, type Provider, type ZooKeeperServer, type ZooKeeperTls } from './types.js';

export interface LoadOptions {
  /** the `-s` secure file (YAML); null/undefined = none */
  secureFile?: string | null;
  /** an explicit clouds.yaml instead of the os-client-config search */
  cloudsFile?: string | null;
  /** environment for OS_CLIENT_CONFIG_FILE, HOME, NODEPOOL_STATE_DIR and `%(NODEPOOL_*)` substitution (default process.env) */
  env?: NodeJS.ProcessEnv;
}

type Mode = 'load' | 'validate';

/** Nodepool re-reads a missing config 3 times 0.5 s apart (it may be in the middle of a rewrite). */
const LOAD_ATTEMPTS = 3;

/**
 * State directory. Precedence: env NODEPOOL_STATE_DIR, then the top-level `state-dir` key
 * (relative to the config file's directory), then the default: a config installed under /etc
 * (a system install such as /etc/nodepool/nodepool.yaml) keeps its state in /var/lib/nodepool like
 * any system daemon; any other config (a source checkout, the demo, a test fixture) keeps it in
 * `<config dir>/state`, so running from a checkout never needs root.
 */
export function resolveStateDir(configFile: string, stateDirKey: string | undefined, env: NodeJS.ProcessEnv): string {
  const fromEnv = env.NODEPOOL_STATE_DIR;
  if (fromEnv !== undefined && fromEnv !== '') return resolve(fromEnv);
  const configDir = dirname(configFile);
  if (stateDirKey !== undefined) return resolve(configDir, stateDirKey);
  return isUnderEtc(configFile) ? '/var/lib/nodepool' : join(configDir, 'state');
}

function isUnderEtc(file: string): boolean {
  return file.startsWith('/etc/');
}

async function readSource(file: string, attempts: number, env: NodeJS.ProcessEnv): Promise<{ src: YamlSource } | { issues: ConfigIssue[] }> {
  const read = await readText(file, attempts);
  if (!read.ok) return { issues: [read.issue] };
  const text = substituteEnv(file, read.text, env);
  if (!text.ok) return { issues: text.issues };
  const parsed = parseYaml(file, text.text);
  return parsed.ok ? { src: parsed.source } : { issues: parsed.issues };
}

/** The first meaningful line of a pre-3.0 INI secure.conf is a `[section]` header. */
function legacyIniSection(text: string): { line: number; section: string } | null {
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const t = (lines[i] ?? '').trim();
    if (t === '' || t.startsWith('#') || t.startsWith(';')) continue;
    const m = /^\[([^\]]+)\]$/.exec(t);
    return m?.[1] !== undefined ? { line: i + 1, section: m[1] } : null;
  }
  return null;
}

async function readSecure(
  file: string, attempts: number, env: NodeJS.ProcessEnv,
): Promise<{ src: YamlSource; data: SecureIn } | { src: null; data: null } | { issues: ConfigIssue[] }> {
  const read = await readText(file, attempts);
  if (!read.ok) return { issues: [read.issue] };
  const ini = legacyIniSection(read.text);
  if (ini !== null) {
    return {
      issues: [{
        file, line: ini.line, column: 1, keyPath: '',
        message: `legacy INI secure file ([${ini.section}] section): since Nodepool 3.0 the secure file is YAML `
          + '(zookeeper-servers, diskimages[].env-vars; nodepool-ts also reads dburi here), '
          + 'e.g. "dburi: mysql+pymysql://user:password@host/nodepool"',
      }],
    };
  }
  const text = substituteEnv(file, read.text, env);
  if (!text.ok) return { issues: text.issues };
  const parsed = parseYaml(file, text.text);
  if (!parsed.ok) return { issues: parsed.issues };
  const src = parsed.source;
  // an empty secure file is allowed
  if (src.data === null || src.data === undefined) return { src: null, data: null };
  const result = secureSchema.safeParse(src.data);
  if (!result.success) return { issues: zodIssues(src, result.error.issues) };
  return { src, data: result.data };
}

/** Validate each provider with its driver's schema (second step, as Nodepool's validator does). */
function parseProviders(src: YamlSource, raw: unknown): { providers: ProviderIn[]; issues: ConfigIssue[] } {
  const providers: ProviderIn[] = [];
  const issues: ConfigIssue[] = [];
  if (!Array.isArray(raw)) return { providers, issues };
  raw.forEach((p: unknown, index) => {
    const base = ['providers', index];
    if (!isRecord(p)) {
      issues.push(issueAt(src, base, `expected mapping, got ${describeType(p)}`));
      return;
    }
    const declared = p.driver;
    if (declared !== undefined && typeof declared !== 'string') {
      issues.push(issueAt(src, [...base, 'driver'], `expected string, got ${describeType(declared)}`));
      return;
    }
    let driver = declared ?? 'openstack';
    // Nodepool's test hook: a provider named fake* runs the fake cloud. We only apply it where the
    // OpenStack driver would run anyway, so a static provider named "fake-rack" stays static.
    if (typeof p.name === 'string' && p.name.startsWith('fake') && driver === 'openstack') driver = 'fake';
    if (!isDriverName(driver)) {
      issues.push(issueAt(src, [...base, 'driver'],
        `unknown driver "${driver}", expected one of ${[...SUPPORTED_DRIVERS, ...VALIDATE_ONLY_DRIVERS].join(', ')}`));
      return;
    }
    switch (driver) {
      case 'openstack': {
        const r = openstackProviderSchema.safeParse(p);
        if (r.success) providers.push({ driver, index, data: r.data });
        else issues.push(...zodIssues(src, r.error.issues, base));
        break;
      }
      case 'fake': {
        const r = fakeProviderSchema.safeParse(p);
        if (r.success) providers.push({ driver, index, data: r.data });
        else issues.push(...zodIssues(src, r.error.issues, base));
        break;
      }
      case 'static': {
        const r = staticProviderSchema.safeParse(p);
        if (r.success) providers.push({ driver, index, data: r.data });
        else issues.push(...zodIssues(src, r.error.issues, base));
        break;
      }
      case 'metastatic': {
        const r = metastaticProviderSchema.safeParse(p);
        if (r.success) providers.push({ driver, index, data: r.data });
        else issues.push(...zodIssues(src, r.error.issues, base));
        break;
      }
      default: {
        const r = providerSchemas[driver].safeParse(p);
        if (r.success) providers.push({ driver, index, data: p });
        else issues.push(...zodIssues(src, r.error.issues, base));
      }
    }
  });
  return { providers, issues };
}

function tenantLimits(ctx: BuildContext, list: TopLevelIn['tenant-resource-limits']): Config['tenantResourceLimits'] {
  const out: Config['tenantResourceLimits'] = new Map();
  (list ?? []).forEach((l, i) => {
    const name = l['tenant-name'];
    if (out.has(name)) ctx.issues.push(issueAt(ctx.src, ['tenant-resource-limits', i, 'tenant-name'], `duplicate tenant "${name}"`));
    for (const key of ['max-volumes', 'max-volume-gb'] as const) {
      if (l[key] !== undefined) {
        ctx.issues.push(issueAt(ctx.src, ['tenant-resource-limits', i, key],
          'volume limits (Nodepool 9.0+) are not supported by nodepool-ts: it does not count volumes; remove the key'));
      }
    }
    out.set(name, { instances: l['max-servers'] ?? Infinity, cores: l['max-cores'] ?? Infinity, ram: l['max-ram'] ?? Infinity });
  });
  return out;
}

function zookeeperTls(tls: TopLevelIn['zookeeper-tls'], dir: string): ZooKeeperTls | null {
  return tls === undefined ? null : { cert: resolve(dir, tls.cert), key: resolve(dir, tls.key), ca: resolve(dir, tls.ca) };
}

function zookeeperServers(list: TopLevelIn['zookeeper-servers']): ZooKeeperServer[] {
  return (list ?? []).map((z) => ({ host: z.host, port: z.port ?? 2181, chroot: z.chroot ?? null }));
}

function cloudsWhere(result: CloudsResult | null): string {
  if (result === null) return 'clouds.yaml was not read';
  if (result.file !== null) {
    const names = [...result.clouds.keys()];
    return `no such cloud in ${result.file} (clouds: ${names.length === 0 ? 'none' : names.join(', ')})`;
  }
  return `no clouds.yaml found (searched ${result.searched.join(', ')})`;
}

async function analyze(file: string, opts: LoadOptions, mode: Mode): Promise<{ config: Config | null; issues: ConfigIssue[] }> {
  const env = opts.env ?? process.env;
  const configFile = resolve(file);
  const attempts = mode === 'load' ? LOAD_ATTEMPTS : 1;
  const issues: ConfigIssue[] = [];
  const secureFile = opts.secureFile === undefined || opts.secureFile === null ? null : resolve(opts.secureFile);
  const done = () => ({ config: null, issues: sortIssues(issues, secureFile === null ? [configFile] : [configFile, secureFile]) });

  const main = await readSource(configFile, attempts, env);
  if ('issues' in main) return { config: null, issues: main.issues };
  const { src } = main;
  if (src.data === null || src.data === undefined) {
    issues.push({ file: configFile, line: null, column: null, keyPath: '', message: 'the configuration is empty, expected a mapping' });
    return done();
  }

  const top = topLevelSchema.safeParse(src.data);
  if (!top.success) issues.push(...zodIssues(src, top.error.issues));
  const parsedProviders = parseProviders(src, isRecord(src.data) ? src.data.providers : undefined);
  issues.push(...parsedProviders.issues);

  let secure: { src: YamlSource; data: SecureIn } | null = null;
  if (secureFile !== null) {
    const s = await readSecure(secureFile, attempts, env);
    if ('issues' in s) issues.push(...s.issues);
    else if (s.src !== null) secure = { src: s.src, data: s.data };
  }
  if (!top.success || issues.length > 0) return done();

  // clouds.yaml is only required to load (config-validate, like Nodepool's, runs without it)
  const needsClouds = parsedProviders.providers.some((p) => p.driver === 'openstack' || p.driver === 'fake');
  let clouds: CloudsResult | null = null;
  if (mode === 'load' && (needsClouds || (opts.cloudsFile !== undefined && opts.cloudsFile !== null))) {
    clouds = await readCloudsYaml({ file: opts.cloudsFile ?? null, env });
    issues.push(...clouds.issues);
  }

  const t = top.data;
  const configDir = dirname(configFile);
  const stateDir = resolveStateDir(configFile, t['state-dir'], env);
  const ctx: BuildContext = {
    src,
    clouds: clouds?.clouds ?? new Map(),
    cloudsChecked: mode === 'load' && clouds !== null && clouds.issues.length === 0,
    cloudsWhere: cloudsWhere(clouds),
    dataPath: (p) => resolve(stateDir, p),
    inputPath: (p) => resolve(configDir, p),
    issues: [],
  };

  const labels = buildLabels(ctx, t);
  const diskimages = buildDiskImages(ctx, t);

  let zk = zookeeperServers(t['zookeeper-servers']);
  // relative paths from the directory of the file that names them (Nodepool: the daemon's cwd)
  let zkTls = zookeeperTls(t['zookeeper-tls'], configDir);
  if (secure !== null) {
    const s = secure.data;
    zkTls = zookeeperTls(s['zookeeper-tls'], dirname(secureFile ?? configFile)) ?? zkTls;
    // a non-empty list in the secure file replaces the main one (it usually carries the real hosts)
    if ((s['zookeeper-servers'] ?? []).length > 0) zk = zookeeperServers(s['zookeeper-servers']);
    (s.diskimages ?? []).forEach((d, i) => {
      const image = diskimages.get(d.name);
      if (image === undefined) {
        ctx.issues.push(issueAt(secure.src, ['diskimages', i, 'name'],
          `unknown diskimage "${d.name}" (not defined in the diskimages of ${configFile})`));
      } else {
        Object.assign(image.envVars, d['env-vars'] ?? {});
      }
    });
  }

  const providers = new Map<string, Provider>();
  const providerNames = new Map<string, number>();
  const staticHosts: StaticHosts = new Map();
  for (const p of parsedProviders.providers) {
    const name = typeof p.data.name === 'string' ? p.data.name : '';
    const first = providerNames.get(name);
    if (first !== undefined) {
      ctx.issues.push(issueAt(src, ['providers', p.index, 'name'], `duplicate provider "${name}" (first defined at providers[${first}])`));
      continue;
    }
    providerNames.set(name, p.index);
    switch (p.driver) {
      case 'openstack':
        providers.set(name, buildOpenStackProvider(ctx, p.data, p.index, labels, diskimages));
        break;
      case 'fake':
        providers.set(name, buildFakeProvider(ctx, p.data, p.index, labels, diskimages));
        break;
      case 'static':
        providers.set(name, buildStaticProvider(ctx, p.data, p.index, labels, staticHosts));
        break;
      case 'metastatic':
        providers.set(name, buildMetastaticProvider(ctx, p.data, p.index, labels));
        break;
      default:
        checkValidateOnlyLabels(ctx, p, labels);
        if (mode === 'load') {
          ctx.issues.push(issueAt(src, ['providers', p.index, 'driver'],
            `driver "${p.driver}" of provider "${name}" is not supported by nodepool-ts yet `
            + `(config-validate accepts it; supported: ${SUPPORTED_DRIVERS.join(', ')})`));
        }
    }
  }
  checkBackingLabels(ctx, parsedProviders.providers, providers);
  completeImageFormats(diskimages, providers.values());
  const tenantResourceLimits = tenantLimits(ctx, t['tenant-resource-limits']);
  const leases = leaseLimits(t.webapp?.leases);
  const ttl = { min: leases.minTtl ?? 60, def: leases.defaultTtl ?? 3600, max: leases.maxTtl ?? 86_400 };
  if (!(ttl.min <= ttl.def && ttl.def <= ttl.max)) {
    ctx.issues.push(issueAt(src, ['webapp', 'leases'],
      `expected min-ttl <= default-ttl <= max-ttl, got ${ttl.min} / ${ttl.def} / ${ttl.max} (defaults 60 / 3600 / 86400)`));
  }
  issues.push(...ctx.issues);
  if (issues.length > 0) return done();

  // Data directories are relative to the state dir, inputs (elements, scripts, keys) to the config
  // file's directory; Nodepool used the daemon's cwd, which is / once daemonized.
  const fromConfig = (p: string | undefined) => (p === undefined ? null : resolve(configDir, p));
  const fromState = (p: string | undefined) => (p === undefined ? null : resolve(stateDir, p));
  const maxHoldAge = t['max-hold-age'];
  const secureDb = secure?.data.dburi ?? secure?.data.database;
  const config: Config = {
    file: configFile,
    zookeeperServers: zk,
    zookeeperTimeoutMs: Math.round((t['zookeeper-timeout'] ?? 10) * 1000),
    zookeeperTls: zkTls,
    labels,
    providers,
    diskimages,
    webapp: {
      port: t.webapp?.port ?? 8005,
      // Nodepool listens on 0.0.0.0; we default to loopback and let operators opt in
      listenAddress: t.webapp?.listen_address ?? '127.0.0.1',
      leases,
    },
    elementsDir: fromConfig(t['elements-dir']),
    imagesDir: fromState(t['images-dir']),
    buildLogDir: fromState(t['build-log-dir'])
      ?? (isUnderEtc(configFile) ? '/var/log/nodepool/builds' : join(stateDir, 'builds')),
    buildLogRetention: t['build-log-retention'] ?? 7,
    maxHoldAge: maxHoldAge === undefined || maxHoldAge <= 0 ? Infinity : maxHoldAge,
    tenantResourceLimits,
    cron: {
      cleanup: t.cron?.cleanup ?? null,
      check: t.cron?.check ?? null,
      imageUpdate: t.cron?.['image-update'] ?? null,
    },
    databaseUri: secureDb ?? t.dburi ?? t.database ?? null,
    historyRetentionDays: t['history-retention-days'] !== undefined && t['history-retention-days'] > 0
      ? t['history-retention-days'] : null,
    stateDir,
    privateKey: fromConfig(t['private-key']),
    scriptDir: fromConfig(t['script-dir']),
    clouds: referencedClouds(providers, clouds),
    secureFile,
    cloudsFile: clouds?.file ?? null,
  };
  return { config, issues: [] };
}

function referencedClouds(providers: Map<string, Provider>, clouds: CloudsResult | null): Config['clouds'] {
  const out: Config['clouds'] = new Map();
  for (const p of providers.values()) {
    if (!isCloudProvider(p)) continue;
    const entry = clouds?.clouds.get(p.cloud);
    if (entry !== undefined) out.set(p.cloud, entry);
  }
  return out;
}

/** Load and validate; throws ConfigError listing every issue. */
export async function loadConfig(file: string, opts: LoadOptions = {}): Promise<Config> {
  const { config, issues } = await analyze(file, opts, 'load');
  if (config === null) throw new ConfigError(issues);
  return config;
}

/**
 * What `nodepool config-validate` checks: YAML syntax, the schema of every driver (including the
 * ones nodepool-ts cannot run yet), the secure file, and the cross references that would make
 * loading fail. clouds.yaml is not required here (as in Nodepool, where the validator never reads
 * it), so a file can be validated on a machine without cloud credentials. [] = valid.
 */
export async function validateConfig(file: string, opts: LoadOptions = {}): Promise<ConfigIssue[]> {
  return (await analyze(file, opts, 'validate')).issues;
}

/** `webapp.leases` (validated by the schema) in the launcher's terms; absent keys stay absent. */
function leaseLimits(raw: Record<string, number | undefined> | undefined): LeaseLimitsConfig {
  const out: LeaseLimitsConfig = {};
  if (raw === undefined) return out;
  const keys: Array<[string, keyof LeaseLimitsConfig]> = [
    ['min-ttl', 'minTtl'], ['max-ttl', 'maxTtl'], ['default-ttl', 'defaultTtl'],
    ['max-nodes-per-lease', 'maxNodesPerLease'], ['max-nodes-per-token', 'maxNodesPerToken'],
    ['max-wait', 'maxWait'], ['rate-burst', 'rateBurst'], ['rate-per-minute', 'ratePerMinute'],
  ];
  for (const [yamlKey, key] of keys) {
    const v = raw[yamlKey];
    if (v !== undefined) out[key] = v;
  }
  return out;
}
