// Driver registry: the one place that maps `driver:` to an implementation. Adding a cloud adds a
// folder under packages/drivers and one line here.
import type { Config, Provider } from '@nodepool-ts/core/config';
import type { Logger } from '@nodepool-ts/core/log';
import type { NodeCache, ZooKeeper } from '@nodepool-ts/core/zk';
import type { Node } from '@nodepool-ts/core/model';
import type { LeakedResource, ProviderLifecycle, ProviderManager, ServerInfo } from '@nodepool-ts/core/provider';
import { createFakeProvider } from '@nodepool-ts/driver-fake';
import { createStaticProvider } from '@nodepool-ts/driver-static';
import { createOpenStackProvider, type ApiCallEvent } from '@nodepool-ts/driver-openstack';
import { createMetastaticProvider, type MetastaticManager as MetastaticDriverManager } from '@nodepool-ts/driver-metastatic';

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
  /**
   * The provider's config changed: take it in place and keep the manager (and its state); false
   * (or absent) = the launcher replaces the manager (metastatic: its slot map must not be lost)
   */
  reconfigure?(provider: Provider): boolean;
}

/** A cloud driver (fake, openstack): launches servers. */
export type CloudManager = ProviderManager & LauncherHooks;

/**
 * A driver of pre-existing hosts (static): never launches; registers its hosts as READY nodes
 * and keeps the registrations in step with the config (§3.7).
 */
export interface StaticManager extends ProviderLifecycle, LauncherHooks {
  readonly kind: 'static';
  /** register missing slots, deregister surplus/unknown ones; start, reload, every cleanup */
  syncRegistrations(): Promise<void>;
}

/**
 * The metastatic driver (Nodepool 5.0+): never boots servers; a node it launches takes a slot on a
 * backing node it requests from the launcher's other providers.
 */
export type MetastaticManager = MetastaticDriverManager & LauncherHooks;

export type AnyProviderManager = CloudManager | StaticManager | MetastaticManager;

/** Figures a driver reports for statsd and Prometheus (web/metrics.ts). */
export interface DriverStats {
  /** one cloud API call: `nodepool.task.<provider>.<service>.<METHOD>.<name>.*` */
  apiCall(e: ApiCallEvent): void;
  /** leftovers a cleanup removed: `nodepool.provider.<provider>.leaked.<resource>` */
  leakedRemoved(provider: string, resource: LeakedResource, count: number): void;
}

/** The launcher's services a driver may use (static registers nodes itself). */
export interface DriverContext {
  stateDir: string;
  /** the whole config the provider came from (labels, private-key, ...) */
  config: Config;
  /** the config in force now: a manager outlives reloads that leave its provider unchanged */
  currentConfig?: () => Config;
  zk: ZooKeeper;
  nodeCache: NodeCache;
  logger(name: string): Logger;
  /** store a node and record the change (database, metrics) */
  storeNode(node: Node, by: string, reason: string): Promise<void>;
  recordNodeRemoved(node: Node, by: string): void;
  /** where API call and cleanup figures go (the launcher's metrics; absent: nowhere) */
  stats?: DriverStats;
}

export class UnsupportedDriverError extends Error {
  readonly code = 'EDRIVER';
  constructor(readonly provider: string, readonly driver: string) {
    super(`provider ${provider}: driver ${driver} is not available in this build of nodepool-ts`);
    this.name = 'UnsupportedDriverError';
  }
}

export function createProviderManager(provider: Provider, _ctx: DriverContext): AnyProviderManager {
  // Each case builds one driver; `_ctx` gives drivers that need them the launcher's services.
  switch (provider.driver) {
    case 'fake': {
      const mgr = createFakeProvider(provider) as ProviderManager & Partial<LauncherHooks>;
      return Object.assign(mgr, { config: provider }) as CloudManager;
    }
    case 'static':
      return createStaticProvider(provider, _ctx);
    case 'metastatic':
      return createMetastaticProvider(provider, _ctx);
    case 'openstack': {
      // pkgcloud is loaded by start(), so launchers without an OpenStack provider never load it
      const stats = _ctx.stats;
      const mgr = createOpenStackProvider(provider, stats ? {
        onApiCall: (e) => stats.apiCall(e),
        onLeakedRemoved: (resource, count) => stats.leakedRemoved(provider.name, resource, count),
      } : {});
      return Object.assign(mgr, { config: provider }) as CloudManager;
    }
    default: {
      // every driver of the config schema is handled; this guards configs from newer schemas
      const other = provider as Provider;
      throw new UnsupportedDriverError(other.name, other.driver);
    }
  }
}
