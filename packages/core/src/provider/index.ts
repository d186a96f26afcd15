// @nodepool-ts/core/provider — the Provider interface every driver implements, its classified
// errors, and the small pieces of Nodepool behaviour all cloud drivers share (flavor choice,
// server metadata, API rate limiting).
export type {
  QuotaInfo, LabelResources, FlavorInfo, ServerImage, ServerSpec, ServerStatus, ServerInfo,
  ImageInfo, UploadImageOptions, ProviderLifecycle, ProviderManager, LeakedResource,
} from './types.js';
export { UNLIMITED_QUOTA, ZERO_USAGE, addUsage } from './types.js';
export type { ErrorKind, ProviderErrorContext, QuotaExceededDetail, ResourceType } from './errors.js';
export {
  ProviderError, QuotaExceededError, NotFoundError, ServerStatusError, ProviderTimeoutError,
  ProviderAbortedError, isProviderError, errorKind, isQuotaError,
} from './errors.js';
export { RateLimiter } from './rate.js';
export type { ServerMetadataInput } from './metadata.js';
export {
  META_GROUPS, META_PROVIDER, META_NODE_ID, META_IMAGE, META_LABEL,
  nodepoolServerMetadata, ownerNodeId, isManagedServer, leakedServers,
} from './metadata.js';
export { selectFlavor, requireFlavor, sortFlavorsByRam, flavorResources } from './flavor.js';
