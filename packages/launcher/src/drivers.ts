// Driver registry: the one place that maps `driver:` to an implementation. Adding a cloud adds a
// folder under packages/drivers and one line here.
import type { Provider } from '@nodepool-ts/core/config';
import type { Node } from '@nodepool-ts/core/model';
import type { ProviderManager, ServerInfo } from '@nodepool-ts/core/provider';
import { createFakeProvider } from '@nodepool-ts/driver-fake';

/** Optional hooks a driver may offer the launcher beyond the cloud interface. */
export interface LauncherHooks {
  /** the provider config this manager was built from (compared on reload) */
  readonly config: Provider;
  /** host keys of a booted server without an SSH scan (the fake cloud knows them) */
  hostKeys?(server: ServerInfo): Promise<string[]>;
  /** last check before a READY node is handed out again (static: TCP liveness) */
  checkReusableNode?(node: Node): Promise<boolean>;
  /** a node znode of this provider was removed (static: register the host again) */
  nodeDeleted?(node: Node): Promise<void>;
  /** periodic liveness check (`cron: check`) */
  checkNodes?(): Promise<void>;
}

export type AnyProviderManager = ProviderManager & LauncherHooks;

export interface DriverContext {
  stateDir: string;
  launcher?: unknown;
}

export class UnsupportedDriverError extends Error {
  readonly code = 'EDRIVER';
  constructor(readonly provider: string, readonly driver: string) {
    super(`provider ${provider}: driver ${driver} is not available in this build of nodepool-ts`);
    this.name = 'UnsupportedDriverError';
  }
}

export function createProviderManager(provider: Provider, _ctx: DriverContext): AnyProviderManager {
  switch (provider.driver) {
    case 'fake': {
      const mgr = createFakeProvider(provider) as ProviderManager & Partial<LauncherHooks>;
      return Object.assign(mgr, { config: provider }) as AnyProviderManager;
    }
    default:
      throw new UnsupportedDriverError(provider.name, provider.driver);
  }
}
