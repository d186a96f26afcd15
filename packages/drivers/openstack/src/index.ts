// @nodepool-ts/driver-openstack — the OpenStack driver (Keystone v3, Nova, Glance v2, Neutron)
// implementing ProviderManager. Its host-key scan is @nodepool-ts/core/ssh's keyscan.
export {
  OpenStackProviderManager, createOpenStackProvider, taskMetricKey, MAX_QUOTA_AGE_MS, DOWN_PORT_AGE_MS,
  FIP_DESCRIPTION_PREFIX,
} from './provider.js';
export type { OpenStackProviderOptions } from './provider.js';
export type { ApiCallEvent, ServiceType } from './session.js';
export { keystoneBase, clientOptions } from './session.js';
export { keystoneAuth, cloudTls } from './auth.js';
export type { KeystoneAuth, AuthMethod, CloudTls } from './auth.js';
export { classifyAddresses, isPrivateIpv4 } from './addresses.js';
export type { NetworkRef, ServerAddresses } from './addresses.js';
export { createServerBody } from './nova.js';
export { redact, errorMessage, parseQuotaMessage } from './errors.js';
