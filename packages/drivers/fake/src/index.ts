// @nodepool-ts/driver-fake — an in-process fake cloud implementing ProviderManager, with fault
// injection and an optional state file that survives restarts and is shared across processes.
export {
  FakeProviderManager, createFakeProvider, fakeAddresses, DEFAULT_FAKE_FLAVORS, DEFAULT_FAKE_IMAGE,
  MAX_QUOTA_AGE_MS,
} from './provider.js';
export type { FakeProviderOptions } from './provider.js';
export type { StoredServer, StoredImage } from './store.js';
