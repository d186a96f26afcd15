// The Nodepool 3.x configuration schema (protocol §5) in zod. Like Nodepool's voluptuous schemas,
// every mapping is strict (unknown keys are errors) and the provider schema depends on its driver,
// so providers are validated in a second step. Defaults are applied by the loader, not here, so
// these schemas read exactly like the tables of §5.
import { z } from 'zod';
import { validate as validateCronExpression } from 'node-cron';
import { isRecord, type KeyPath } from './source.js';

// ---------------------------------------------------------------------------------------------
// building blocks; each carries the "expected ..." half of the message, the loader adds "got ..."

const str = () => z.string({ error: 'expected string' });
const int = () => z.int({ error: 'expected integer' });
const bool = () => z.boolean({ error: 'expected boolean' });
const strList = () => z.array(str(), { error: 'expected list of strings' });
const list = <T extends z.ZodType>(item: T) => z.array(item, { error: 'expected list' });
/** voluptuous `dict`: any mapping */
const dict = () => z.record(z.string(), z.unknown(), { error: 'expected mapping' });
/** mapping whose values end up as strings (Nova metadata) */
const scalarDict = () => z.record(
  z.string(),
  z.union([z.string(), z.number(), z.boolean()], { error: 'expected string' }),
  { error: 'expected mapping' },
);
const strDict = () => z.record(z.string(), str(), { error: 'expected mapping' });
const obj = <S extends z.ZodRawShape>(shape: S) => z.strictObject(shape, { error: 'expected mapping' });
/** voluptuous `Coerce(float)`: a number or a numeric string */
const floatLike = () => z.union(
  [z.number(), z.string().regex(/^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/, { error: 'expected number' })],
  { error: 'expected number' },
).transform((v) => Number(v));
const nonNegative = () => z.number({ error: 'expected number of seconds >= 0' })
  .min(0, { error: 'expected number of seconds >= 0' });
const probability = () => z.number({ error: 'expected probability between 0 and 1' })
  .min(0, { error: 'expected probability between 0 and 1' })
  .max(1, { error: 'expected probability between 0 and 1' });
const stringOrList = () => z.union([str(), strList()], { error: 'expected string or list of strings' });

/** Run cross-field refinements even when a sibling key has a type error, so all issues show. */
const onObjects = { when: (payload: { value: unknown }) => isRecord(payload.value) };

type Refinement = [
  (v: Record<string, unknown>) => boolean,
  { when: (payload: { value: unknown }) => boolean; path: PropertyKey[]; message: string },
];

const exclusive = (a: string, b: string): Refinement => [
  (v) => !(v[a] !== undefined && v[b] !== undefined),
  { ...onObjects, path: [b], message: `${a} and ${b} are mutually exclusive` },
];

// ---------------------------------------------------------------------------------------------
// seed-era values

/** Five-field cron, as the pre-3.0 launcher's apscheduler used it (node-cron also allows six). */
export function isCronExpression(expr: string): boolean {
  return expr.trim().split(/\s+/).length === 5 && validateCronExpression(expr.trim());
}

const cronExpression = () => str().superRefine((expr, ctx) => {
  if (!isCronExpression(expr)) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a cron expression "minute hour day-of-month month day-of-week", got ${JSON.stringify(expr)}`,
    });
  }
});

const DB_URI = /^(?:(?:mysql|mariadb)(?:\+[A-Za-z0-9_]+)?:\/\/[^\s/]\S*|sqlite:\/\/\/\S+)$/;

/** Never echo the value: a database URI carries a password. */
const databaseUri = () => str().refine((uri) => DB_URI.test(uri), {
  message: 'expected a database URI: mysql://user:password@host/db, mysql+pymysql://... or sqlite:///path',
});

// ---------------------------------------------------------------------------------------------
// top level

const zookeeperServer = obj({
  host: str(),
  port: int().optional(),
  chroot: str().optional(),
});

const label = obj({
  name: str(),
  'min-ready': int().optional(),
  'max-ready-age': int().optional(),
  /** seed era: script run on the node once ready */
  'ready-script': str().optional(),
});

const diskimage = obj({
  name: str(),
  // Nodepool 3.13+: inheritance (an abstract diskimage is only a parent, never built)
  abstract: bool().optional(),
  parent: str().optional(),
  elements: strList().optional(),
  release: z.union([str(), int()], { error: 'expected string or integer' }).optional(),
  'env-vars': strDict().optional(),
  formats: strList().optional(),
  'rebuild-age': int().optional(),
  pause: bool().optional(),
  username: str().optional(),
  'build-timeout': int().optional(),
  // Nodepool 11.0: remove the local files of a build once every provider has it uploaded
  'delete-after-upload': bool().optional(),
  'keep-formats': strList().optional(),
  // Nodepool 3.9+ / 4.1+: passed to Zuul on the nodes booted from the image
  'python-path': str().optional(),
  'shell-type': str().optional(),
});

const positiveInt = () => int().min(1, { error: 'expected an integer of at least 1' });

/** The lease API's limits (beyond Nodepool): every key optional, defaults in the launcher. */
const leases = obj({
  'min-ttl': positiveInt().optional(),
  'max-ttl': positiveInt().optional(),
  'default-ttl': positiveInt().optional(),
  'max-nodes-per-lease': positiveInt().optional(),
  'max-nodes-per-token': positiveInt().optional(),
  'max-wait': int().min(0, { error: 'expected an integer of at least 0' }).optional(),
  'rate-burst': positiveInt().optional(),
  'rate-per-minute': positiveInt().optional(),
});

const webapp = obj({
  port: int().optional(),
  listen_address: str().optional(),
  leases: leases.optional(),
});

const cron = obj({
  cleanup: cronExpression().optional(),
  check: cronExpression().optional(),
  'image-update': cronExpression().optional(),
});

/** Nodepool 3.13+'s TLS to ZooKeeper: PEM files of the client certificate, its key and the CA */
const zookeeperTls = obj({ cert: str(), key: str(), ca: str() });

/** Nodepool 4.3+: limits of the nodes requested by one Zuul tenant, over all providers */
const tenantResourceLimit = obj({
  'tenant-name': str(),
  'max-servers': int().optional(),
  'max-cores': int().optional(),
  'max-ram': int().optional(),
  // read so that they can be refused by name (nodepool-ts counts no volumes)
  'max-volumes': int().optional(),
  'max-volume-gb': int().optional(),
});

export const topLevelSchema = obj({
  'zookeeper-servers': list(zookeeperServer).optional(),
  'zookeeper-tls': zookeeperTls.optional(),
  // Nodepool 6.0+: the ZooKeeper session timeout, in seconds
  'zookeeper-timeout': z.number({ error: 'expected number of seconds > 0' }).positive({ error: 'expected number of seconds > 0' }).optional(),
  labels: list(label).optional(),
  // validated one by one with their driver's schema (providerSchemas)
  providers: list(z.unknown()).optional(),
  diskimages: list(diskimage).optional(),
  webapp: webapp.optional(),
  'elements-dir': str().optional(),
  'images-dir': str().optional(),
  'build-log-dir': str().optional(),
  'build-log-retention': int().optional(),
  'max-hold-age': int().optional(),
  'tenant-resource-limits': list(tenantResourceLimit).optional(),
  // seed era (pre-3.0), still accepted
  cron: cron.optional(),
  dburi: databaseUri().optional(),
  database: databaseUri().optional(),
  'private-key': str().optional(),
  'script-dir': str().optional(),
  // nodepool-ts extension: where the launcher keeps its state
  'state-dir': str().optional(),
  // nodepool-ts extension: days of history the database keeps (unset: everything, forever)
  'history-retention-days': int().optional(),
}).refine(...exclusive('dburi', 'database'));

export type TopLevelIn = z.infer<typeof topLevelSchema>;

export const secureSchema = obj({
  'zookeeper-servers': list(zookeeperServer).optional(),
  'zookeeper-tls': zookeeperTls.optional(),
  diskimages: list(obj({ name: str(), 'env-vars': strDict().optional() })).optional(),
  dburi: databaseUri().optional(),
  database: databaseUri().optional(),
}).refine(...exclusive('dburi', 'database'));

export type SecureIn = z.infer<typeof secureSchema>;

// ---------------------------------------------------------------------------------------------
// providers

const providerCommon = {
  name: str(),
  driver: str().optional(),
  'max-concurrency': int().optional(),
  // Nodepool 6.1+: which pools are offered a request first (lower first; default 100)
  priority: int().optional(),
};

const poolCommon = {
  name: str(),
  priority: int().optional(),
  'max-servers': int().optional(),
  'node-attributes': dict().optional(),
};

const providerDiskimage = obj({
  name: str(),
  pause: bool().optional(),
  meta: scalarDict().optional(),
  'config-drive': bool().optional(),
  'connection-type': str().optional(),
  'connection-port': int().optional(),
});

const cloudImage = obj({
  name: str(),
  'config-drive': bool().optional(),
  'connection-type': str().optional(),
  'connection-port': int().optional(),
  'image-id': str().optional(),
  'image-name': str().optional(),
  username: str().optional(),
  'python-path': str().optional(),
  'shell-type': str().optional(),
}).refine(...exclusive('image-id', 'image-name'));

const cloudPoolLabel = obj({
  name: str(),
  diskimage: str().optional(),
  'cloud-image': str().optional(),
  'min-ram': int().optional(),
  'flavor-name': str().optional(),
  'key-name': str().optional(),
  'console-log': bool().optional(),
  'boot-from-volume': bool().optional(),
  'volume-size': int().optional(),
  'instance-properties': scalarDict().optional(),
  // Nodepool 8.0: server metadata formatted from the request ({request.id}, {request.event_id}, ...)
  'dynamic-instance-properties': scalarDict().optional(),
  userdata: str().optional(),
})
  .refine(...exclusive('diskimage', 'cloud-image'))
  .refine((v) => v.diskimage !== undefined || v['cloud-image'] !== undefined,
    { ...onObjects, message: 'one of diskimage or cloud-image is required' })
  .refine((v) => v['min-ram'] !== undefined || v['flavor-name'] !== undefined,
    { ...onObjects, message: 'at least one of min-ram or flavor-name is required' });

const cloudPool = obj({
  ...poolCommon,
  networks: strList().optional(),
  'auto-floating-ip': bool().optional(),
  'host-key-checking': bool().optional(),
  'ignore-provider-quota': bool().optional(),
  'max-cores': int().optional(),
  'max-ram': int().optional(),
  labels: list(cloudPoolLabel).optional(),
  'availability-zones': strList().optional(),
  'security-groups': strList().optional(),
});

const openstackShape = {
  ...providerCommon,
  'region-name': str().optional(),
  cloud: str(),
  'boot-timeout': int().optional(),
  'launch-timeout': int().optional(),
  'launch-retries': int().optional(),
  /** deprecated, accepted and ignored */
  'nodepool-id': str().optional(),
  rate: floatLike().optional(),
  'hostname-format': str().optional(),
  'image-name-format': str().optional(),
  'clean-floating-ips': bool().optional(),
  'post-upload-hook': str().optional(),
  // Nodepool 9.1: seconds an image upload may take
  'image-upload-timeout': positiveInt().optional(),
  // seconds a port of ours stays DOWN before it is deleted; 0 = never delete
  'port-cleanup-interval': int().min(0, { error: 'expected an integer of at least 0' }).optional(),
  // nodepool-ts: stop launching in a provider after consecutive failed launches (off when absent)
  'launch-circuit-breaker': obj({
    failures: positiveInt().optional(),
    cooldown: positiveInt().optional(),
    'max-cooldown': positiveInt().optional(),
  }).optional(),
  pools: list(cloudPool).optional(),
  diskimages: list(providerDiskimage).optional(),
  'cloud-images': list(cloudImage).optional(),
};

export const openstackProviderSchema = obj(openstackShape);
export type OpenStackProviderIn = z.infer<typeof openstackProviderSchema>;

/** The fake cloud: the OpenStack keys (cloud optional) plus knobs to exercise every failure path. */
export const fakeProviderSchema = obj({
  ...openstackShape,
  cloud: str().optional(),
  azs: z.array(str(), { error: 'expected list of strings' }).min(1, { error: 'expected at least one availability zone' }).optional(),
  quota: obj({ instances: int().optional(), cores: int().optional(), ram: int().optional() }).optional(),
  faults: obj({
    'boot-delay': nonNegative().optional(),
    'create-failure-rate': probability().optional(),
    'error-rate': probability().optional(),
    'api-error-rate': probability().optional(),
    'quota-exceeded': bool().optional(),
    'delete-failure-rate': probability().optional(),
    'delete-delay': nonNegative().optional(),
  }).optional(),
  'state-file': str().optional(),
  flavors: list(obj({ name: str(), id: str().optional(), vcpus: int(), ram: int() })).optional(),
});
export type FakeProviderIn = z.infer<typeof fakeProviderSchema>;

const staticNode = obj({
  name: str(),
  labels: stringOrList(),
  username: str().optional(),
  timeout: int().optional(),
  'host-key': stringOrList().optional(),
  'connection-port': int().optional(),
  /** deprecated alias of connection-port, still read by Nodepool 3.x */
  'ssh-port': int().optional(),
  'connection-type': str().optional(),
  'max-parallel-jobs': int().optional(),
  'host-key-checking': bool().optional(),
  'python-path': str().optional(),
  'shell-type': str().optional(),
});

export const staticProviderSchema = obj({
  ...providerCommon,
  pools: list(obj({ ...poolCommon, nodes: list(staticNode).optional() })).optional(),
});
export type StaticProviderIn = z.infer<typeof staticProviderSchema>;

const nonNegativeInt = () => int().min(0, { error: 'expected an integer of at least 0' });

/** Nodepool 5.0+'s metastatic driver: nodes carved out of backing nodes of another provider. */
export const metastaticProviderSchema = obj({
  ...providerCommon,
  'boot-timeout': int().optional(),
  'launch-timeout': int().optional(),
  'launch-retries': int().optional(),
  pools: list(obj({
    ...poolCommon,
    'host-key-checking': bool().optional(),
    labels: list(obj({
      name: str(),
      'backing-label': str(),
      'max-parallel-jobs': positiveInt().optional(),
      'grace-time': nonNegativeInt().optional(),
      'min-retention-time': nonNegativeInt().optional(),
      'max-age': nonNegativeInt().optional(),
      'host-key-checking': bool().optional(),
    })),
  })),
});
export type MetastaticProviderIn = z.infer<typeof metastaticProviderSchema>;

// Drivers nodepool-ts cannot run yet: their schema is checked so config-validate passes a valid
// file, and loading rejects them.

export const kubernetesProviderSchema = obj({
  ...providerCommon,
  context: str(),
  'launch-retries': int().optional(),
  pools: list(obj({
    ...poolCommon,
    labels: list(obj({
      name: str(),
      type: z.enum(['namespace', 'pod'], { error: 'expected one of namespace, pod' }),
      image: str().optional(),
      'image-pull': str().optional(),
    })),
  })),
});

export const openshiftProviderSchema = obj({
  ...providerCommon,
  context: str(),
  'launch-retries': int().optional(),
  'max-projects': int().optional(),
  pools: list(obj({
    name: str(),
    labels: list(obj({
      name: str(),
      type: z.enum(['project', 'pod'], { error: 'expected one of project, pod' }),
      image: str().optional(),
      'image-pull': str().optional(),
      cpu: int().optional(),
      memory: int().optional(),
    })),
  })),
});

export const awsProviderSchema = obj({
  ...providerCommon,
  'region-name': str(),
  'profile-name': str().optional(),
  'boot-timeout': int().optional(),
  'launch-retries': int().optional(),
  'hostname-format': str().optional(),
  'cloud-images': list(obj({
    name: str(),
    'image-id': str().optional(),
    username: str().optional(),
    'connection-type': str().optional(),
    'connection-port': int().optional(),
  })).optional(),
  pools: list(obj({
    ...poolCommon,
    'security-group-id': str().optional(),
    'subnet-id': str().optional(),
    labels: list(obj({
      name: str(),
      'cloud-image': str().optional(),
      'instance-type': str(),
      'key-name': str(),
      'volume-type': str().optional(),
      'volume-size': int().optional(),
    })),
  })),
});

/** Nodepool's in-tree `test` driver (labels are plain names). */
export const testProviderSchema = obj({
  ...providerCommon,
  pools: list(obj({ ...poolCommon, labels: strList().optional() })).optional(),
});

export const SUPPORTED_DRIVERS = ['openstack', 'fake', 'static', 'metastatic'] as const;
export const VALIDATE_ONLY_DRIVERS = ['kubernetes', 'openshift', 'aws', 'test'] as const;
export type SupportedDriver = (typeof SUPPORTED_DRIVERS)[number];
export type ValidateOnlyDriver = (typeof VALIDATE_ONLY_DRIVERS)[number];
export type DriverName = SupportedDriver | ValidateOnlyDriver;

export const providerSchemas: Record<DriverName, z.ZodType> = {
  openstack: openstackProviderSchema,
  fake: fakeProviderSchema,
  static: staticProviderSchema,
  metastatic: metastaticProviderSchema,
  kubernetes: kubernetesProviderSchema,
  openshift: openshiftProviderSchema,
  aws: awsProviderSchema,
  test: testProviderSchema,
};

export function isDriverName(name: string): name is DriverName {
  return Object.hasOwn(providerSchemas, name);
}

// ---------------------------------------------------------------------------------------------
// keys that were valid before Nodepool 3.0: say what replaced them instead of "unknown key";
// keys of later Nodepool releases nodepool-ts does not have: say so

const CREDENTIALS = 'cloud credentials moved to clouds.yaml in Nodepool 3.0: set providers[].cloud to a clouds.yaml entry';
const CLOUDS_YAML = 'removed in Nodepool 3.0: configure this for the cloud in clouds.yaml';

const LEGACY_HINTS: Record<string, Record<string, string>> = {
  '': {
    'gearman-servers': 'removed in Nodepool 3.0: Zuul no longer asks for nodes over Gearman, it submits node requests through ZooKeeper (zookeeper-servers)',
    'zmq-publishers': 'removed in Nodepool 3.0: node usage is no longer reported by Jenkins over ZMQ; Zuul locks nodes and marks them used/in-use in ZooKeeper',
    targets: 'removed in Nodepool 3.0: nodes are no longer attached to Jenkins targets; Zuul takes them through ZooKeeper node requests and holds them with the node lock (its lease)',
    zookeeper: 'did you mean zookeeper-servers?',
  },
  labels: {
    image: 'removed in Nodepool 3.0: the image is chosen per provider with diskimage or cloud-image in providers[].pools[].labels[]',
    providers: 'removed in Nodepool 3.0: list the label in providers[].pools[].labels instead',
    subnodes: 'removed in Nodepool 3.0: request several nodes in one Zuul nodeset instead',
  },
  providers: {
    'max-servers': 'moved in Nodepool 3.0 to providers[].pools[].max-servers',
    images: 'replaced in Nodepool 3.0 by top-level diskimages with providers[].diskimages (built by nodepool-builder) or providers[].cloud-images (existing images), used from providers[].pools[].labels[]',
    username: CREDENTIALS,
    password: CREDENTIALS,
    'auth-url': CREDENTIALS,
    'project-id': CREDENTIALS,
    'project-name': CREDENTIALS,
    'template-hostname': 'replaced in Nodepool 3.0 by hostname-format',
    'image-type': 'removed in Nodepool 3.0: set image_format for the cloud in clouds.yaml',
    networks: 'moved in Nodepool 3.0 to providers[].pools[].networks',
    'availability-zones': 'moved in Nodepool 3.0 to providers[].pools[].availability-zones',
    'security-groups': 'moved in Nodepool 3.0 to providers[].pools[].security-groups',
    keypair: 'moved in Nodepool 3.0 to providers[].pools[].labels[].key-name',
    'ipv6-preferred': CLOUDS_YAML,
    'api-timeout': CLOUDS_YAML,
    'service-type': CLOUDS_YAML,
    'service-name': CLOUDS_YAML,
    pool: 'removed in Nodepool 3.0: floating IPs are configured in clouds.yaml and switched per pool with providers[].pools[].auto-floating-ip',
  },
  'providers.pools.labels': {
    image: 'use diskimage (an image built by nodepool-builder) or cloud-image (an existing image)',
  },
};

/** Hint for an unknown key at `objectPath` (the path of the mapping that holds it). */
export function legacyHint(objectPath: KeyPath, key: string): string | null {
  const context = objectPath.filter((k) => typeof k === 'string').join('.');
  return LEGACY_HINTS[context]?.[key] ?? null;
}
