// The ZooKeeper layer: one session, every Nodepool path, the kazoo-compatible lock, watch-fed
// caches. Daemons and tools use only this module to touch the tree.
export { ZooKeeper, type LockOptions, type LockStat } from './zookeeper.js';
export {
  ZkSession, STOP_ZK_WAIT_MS, buildConnection, statTimeMs, watchEventType,
  type SessionState, type ZooKeeperOptions, type ZooKeeperServer, type CreateMode, type SessionBound,
  type WatchEventType, type RawEvent, type Stat,
} from './session.js';
export { Lock, CONTENDER_RE, sortContenders, type AcquireOptions } from './lock.js';
export { ZnodeCache, NodeCache, RequestCache } from './cache.js';
export { paths, LOCK_CHILD } from './paths.js';
export {
  ComponentRegistration, componentToData, componentVersion, getRegisteredPools, poolComponentToLauncher,
  COMPONENT_MODEL_API, type ComponentKind, type ComponentState, type PoolComponentFields,
} from './components.js';
export {
  ZkError, ZkConnectError, ImageDataError, LockError, LockTimeoutError, isRetryable, isNoNode, isNodeExists,
  type ZkErrorCode,
} from './errors.js';
export { mapLimit, Limiter, READ_CONCURRENCY } from './concurrency.js';
export { ZkTlsError } from './tls.js';
