// What a PoolWorker needs from the Launcher that owns it: shared caches, quota, recording and
// driver hooks. An interface so workers can be tested against a small fake of the launcher.
import type { Config, Pool, Provider } from '@nodepool-ts/core/config';
import type { Logger } from '@nodepool-ts/core/log';
import type { LauncherInfo, Node, NodeRequest } from '@nodepool-ts/core/model';
import type { NodeCache, RequestCache, ZooKeeper } from '@nodepool-ts/core/zk';
import type { LaunchCircuit } from './circuit-breaker.js';
import type { Resources } from './decide.js';
import type { LaunchResult } from './node-launcher.js';
import type { PoolWorker } from './pool-worker.js';

export interface LaunchAttempt {
  attempt: number;
  startedAt: number;
  endedAt: number;
  result: LaunchResult;
  error: string | null;
}

export interface LauncherContext {
  readonly zk: ZooKeeper;
  readonly hostname: string;
  readonly nodeCache: NodeCache;
  readonly requestCache: RequestCache;
  /** the config in force (labels' ready-scripts, private-key) */
  readonly config: Config;
  logger(name: string): Logger;
  /** union of labels of every provider in this launcher's config (Nodepool registers that) */
  supportedLabels(): string[];
  /** registered launchers, as last seen through the launchers watch */
  launchers(): LauncherInfo[];
  activeLaunches(provider: string): number;
  providerQuota(provider: string): Promise<Resources>;
  unavailableLabels(provider: Provider, pool: Pool): Promise<ReadonlySet<string>>;
  checkReusable(worker: PoolWorker, node: Node): Promise<boolean>;
  keyscan?: (host: string, port: number, timeoutMs: number, signal: AbortSignal) => Promise<string[]>;
  recordNode(node: Node, by: string, reason: string): void;
  /**
   * Nodes this launcher just created whose znodes the watch-fed cache has not shown yet: quota
   * planning counts them, or two plans in a row could both spend the same capacity.
   */
  noteCreated(node: Node): void;
  createdNotCached(): Node[];
  recordRequest(req: NodeRequest, by: string, reason: string): void;
  /** A handler released a min-ready request's nodes to the pool and deleted the request. */
  minReadyDone?(id: string): void;
  recordLaunchAttempt(node: Node, by: string, attempt: LaunchAttempt): void;
  /** `requestId`: the request the node was launched for */
  launchFinished(worker: PoolWorker, node: Node, state: 'ready' | 'failed' | 'aborted', ms: number, requestId: string | null): void;
  afterReady(worker: PoolWorker, node: Node): Promise<void>;
  /**
   * Host keys of a node's server known to its own driver without a scan (the fake cloud's), null
   * when it has none to offer (metastatic nodes scan their backing node's address then).
   */
  hostKeysOf?(node: Node): Promise<string[] | null>;
  /** the provider's `launch-circuit-breaker`, when configured */
  launchCircuit?(provider: string): LaunchCircuit | null;
}
