// Every ZooKeeper path Nodepool uses (§1.2). No other module builds path strings: a typo in a
// path is a silent incompatibility with Zuul or another launcher, so they all live here.
import { ZkError } from './errors.js';

const ROOT = '/nodepool';
const REQUESTS = `${ROOT}/requests`;
const REQUEST_LOCKS = `${ROOT}/requests-lock`;
const NODES = `${ROOT}/nodes`;
const LAUNCHERS = `${ROOT}/launchers`;
const IMAGES = `${ROOT}/images`;
const ELECTIONS = `${ROOT}/elections`;
/** Nodepool 6.1+'s component registry (not in 3.x; 3.x tools never read it) */
const COMPONENTS = `${ROOT}/components`;
// nodepool-ts extensions: Nodepool and Zuul never read or write below these.
const STATIC_HOSTS = `${ROOT}/static-hosts`;
const STATIC_LOCKS = `${ROOT}/static-locks`;

/** One path segment: an id or a name taken from config or from a znode listing. */
function seg(kind: string, value: string): string {
  if (typeof value !== 'string' || value === '' || value === '.' || value === '..' || value.includes('/')) {
    throw new ZkError('EBADPATH', `invalid ${kind} for a ZooKeeper path: ${JSON.stringify(value)}`, { kind, value });
  }
  return value;
}

export const paths = {
  root: ROOT,

  requestsRoot: REQUESTS,
  /** Parent + prefix for a sequential create: `/nodepool/requests/<prio>-`. */
  requestPrefix: (priority: string): string => `${REQUESTS}/${seg('priority', priority)}-`,
  request: (id: string): string => `${REQUESTS}/${seg('request id', id)}`,
  requestLockRoot: REQUEST_LOCKS,
  requestLock: (id: string): string => `${REQUEST_LOCKS}/${seg('request id', id)}`,

  nodesRoot: NODES,
  /** Parent + empty prefix for a sequential create: the node id is the bare sequence. */
  nodePrefix: `${NODES}/`,
  node: (id: string): string => `${NODES}/${seg('node id', id)}`,
  nodeLock: (id: string): string => `${NODES}/${seg('node id', id)}/lock`,

  launchersRoot: LAUNCHERS,
  launcher: (id: string): string => `${LAUNCHERS}/${seg('launcher id', id)}`,

  imagesRoot: IMAGES,
  image: (image: string): string => `${IMAGES}/${seg('image', image)}`,
  imageBuildRequest: (image: string): string => `${IMAGES}/${seg('image', image)}/request-build`,
  /**
   * `nodepool image-pause`: an empty znode whose presence stops new builds of the image. Nodepool
   * 4+ uses the same path; 3.x tools never read an image znode's children besides `builds`.
   */
  imagePause: (image: string): string => `${IMAGES}/${seg('image', image)}/pause`,
  /**
   * nodepool-ts addition (`nodepool image-upload <provider> <image>`): one empty znode per
   * provider under `request-upload`; Nodepool never lists an image znode's children, so it is
   * invisible to it.
   */
  imageUploadRequests: (image: string): string => `${IMAGES}/${seg('image', image)}/request-upload`,
  imageUploadRequest: (image: string, provider: string): string =>
    `${IMAGES}/${seg('image', image)}/request-upload/${seg('provider', provider)}`,
  builds: (image: string): string => `${IMAGES}/${seg('image', image)}/builds`,
  /** Sequential-create prefix for a new build. */
  buildPrefix: (image: string): string => `${IMAGES}/${seg('image', image)}/builds/`,
  imageBuildLock: (image: string): string => `${IMAGES}/${seg('image', image)}/builds/lock`,
  build: (image: string, buildId: string): string =>
    `${IMAGES}/${seg('image', image)}/builds/${seg('build id', buildId)}`,
  buildLock: (image: string, buildId: string): string =>
    `${IMAGES}/${seg('image', image)}/builds/${seg('build id', buildId)}/lock`,
  /**
   * nodepool-ts addition: JSON progress of a build (phase, element, failure reason, log path),
   * written by the builder that runs it, read by `image-build --wait` on any host. Nodepool only
   * ever reads the `providers` child of a build and deletes builds recursively, so it is harmless
   * there and goes away with its build.
   */
  buildProgress: (image: string, buildId: string): string =>
    `${IMAGES}/${seg('image', image)}/builds/${seg('build id', buildId)}/progress`,
  buildProviders: (image: string, buildId: string): string =>
    `${IMAGES}/${seg('image', image)}/builds/${seg('build id', buildId)}/providers`,
  buildProvider: (image: string, buildId: string, provider: string): string =>
    `${paths.buildProviders(image, buildId)}/${seg('provider', provider)}`,
  uploads: (image: string, buildId: string, provider: string): string =>
    `${paths.buildProvider(image, buildId, provider)}/images`,
  /** Sequential-create prefix for a new upload. */
  uploadPrefix: (image: string, buildId: string, provider: string): string =>
    `${paths.buildProvider(image, buildId, provider)}/images/`,
  uploadLock: (image: string, buildId: string, provider: string): string =>
    `${paths.buildProvider(image, buildId, provider)}/images/lock`,
  /** Also the `image_id` Nodepool stores on nodes booted from this upload. */
  upload: (image: string, buildId: string, provider: string, uploadId: string): string =>
    `${paths.buildProvider(image, buildId, provider)}/images/${seg('upload id', uploadId)}`,

  componentsRoot: COMPONENTS,
  /** `/nodepool/components/<kind>`: launcher, pool, builder */
  componentsOf: (kind: string): string => `${COMPONENTS}/${seg('component kind', kind)}`,
  /** Sequential-create prefix of a component: `/nodepool/components/<kind>/<hostname>` */
  componentPrefix: (kind: string, hostname: string): string =>
    `${COMPONENTS}/${seg('component kind', kind)}/${seg('hostname', hostname)}`,

  electionsRoot: ELECTIONS,
  statsElection: `${ELECTIONS}/stats`,

  /** (nodepool-ts) static hosts added at runtime: `/nodepool/static-hosts/<provider>/<host>` */
  staticHostsRoot: STATIC_HOSTS,
  staticHostsOf: (provider: string): string => `${STATIC_HOSTS}/${seg('provider', provider)}`,
  staticHost: (provider: string, host: string): string =>
    `${STATIC_HOSTS}/${seg('provider', provider)}/${seg('static host', host)}`,
  /** (nodepool-ts) serialises static registrations of one provider across launchers */
  staticLock: (provider: string): string => `${STATIC_LOCKS}/${seg('provider', provider)}`,

  /** A child of a path (lock contenders, recursive walks). */
  child: (parent: string, name: string): string => `${parent === '/' ? '' : parent}/${seg('znode name', name)}`,
  /** The parent of a path; '/' for a top-level path. */
  parent: (path: string): string => {
    const i = path.lastIndexOf('/');
    return i <= 0 ? '/' : path.slice(0, i);
  },
  /** The last segment of a path (a sequential create's generated name). */
  basename: (path: string): string => path.slice(path.lastIndexOf('/') + 1),
} as const;

/** The name child znodes of `builds/` and `.../images/` that are not objects. */
export const LOCK_CHILD = 'lock';
