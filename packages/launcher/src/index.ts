// @nodepool-ts/launcher: the launcher daemon as a library (tests, the CLI's `delete --now`).
export { Launcher, type LauncherOptions } from './launcher.js';
export { createProviderManager, UnsupportedDriverError, type AnyProviderManager, type CloudManager, type StaticManager, type MetastaticManager, type LauncherHooks, type DriverContext, type DriverStats } from './drivers.js';
export { planRequest, compareRequests, neededLabels, MIN_READY_REQUESTOR, type Plan, type PlanInput, type PoolView, type Step } from './decide.js';
export { LauncherEvents, type LauncherEventMap } from './events.js';
export { pyFormat, formatHostname, FormatError } from './format.js';
export { VERSION } from './version.js';
export { WebApp, type WebAppOptions, type WebAppHost } from './web/server.js';
export { LauncherMetrics, computeNodeGauges, computeAddressableRequests, registrationPool, statsdSafe } from './web/metrics.js';
export {
  TokenStore, TokenError, openTokenStore, parseExpiry, TOKEN_SCOPES, DEFAULT_TOKEN_SCOPES, isTokenScope,
  type TokenInfo, type CreatedToken, type TokenScope,
} from './web/tokens.js';
export { LeaseManager, LeaseStore, DEFAULT_LEASE_LIMITS, LEASE_REQUESTOR, type Lease, type LeaseLimits, type LeaseState } from './web/leases.js';
