// @nodepool-ts/driver-openstack — the OpenStack driver (Keystone v3, Nova, Glance v2, Neutron)
// implementing ProviderManager, and the SSH host-key scan the launcher uses for booted servers.
export {
  OpenStackProviderManager, createOpenStackProvider, taskMetricKey, MAX_QUOTA_AGE_MS, DOWN_PORT_AGE_MS,
  FIP_DESCRIPTION_PREFIX,
} from './provider.js';
export type { OpenStackProviderOptions } from './provider.js';
export type { ApiCallEvent, ServiceType } from './session.js';
export { keystoneBase, clientOptions } from './session.js';
export { keyscan, keyType, KeyscanError, HOST_KEY_ALGORITHMS } from './keyscan.js';
export type { KeyscanOptions, KeyscanFailure } from './keyscan.js';
export { classifyAddresses, isPrivateIpv4 } from './addresses.js';
export type { NetworkRef, ServerAddresses } from './addresses.js';
export { createServerBody } from './nova.js';
export { redact, errorMessage, parseQuotaMessage } from './errors.js';
