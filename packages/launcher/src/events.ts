// Typed events the launcher emits for observers that must never slow it down: the database
// recorder, statsd/Prometheus metrics, the dashboard's live feed.
import { EventEmitter } from 'node:events';
import type { Node, NodeRequest } from '@nodepool-ts/core/model';
import type { LaunchAttempt } from './context.js';
import type { CircuitChange } from './circuit-breaker.js';

export interface LauncherEventMap {
  /** any node znode changed (cache view; `null` = gone) */
  node: [id: string, node: Node | null];
  /** any request znode changed (cache view; `null` = gone) */
  request: [id: string, req: NodeRequest | null];
  /** this launcher wrote a node */
  'node-stored': [node: Node, by: string, reason: string];
  /** this launcher removed a node znode */
  'node-removed': [node: Node, by: string];
  /** this launcher wrote or submitted a request */
  'request-stored': [req: NodeRequest, by: string, reason: string];
  'launch-attempt': [node: Node, by: string, attempt: LaunchAttempt];
  launch: [node: Node, provider: string, state: 'ready' | 'failed' | 'aborted', ms: number, requestId: string | null];
  ready: [node: Node, provider: string];
  /** a provider's launch circuit breaker opened or closed */
  circuit: [change: CircuitChange];
}

export class LauncherEvents extends EventEmitter<LauncherEventMap> {}
