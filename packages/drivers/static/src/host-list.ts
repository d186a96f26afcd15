// What `nodepool static-host list` and `GET /api/v1/static-hosts` show: every static host,
// configured (nodepool.yaml) or added at runtime, with the nodes the launchers registered for it.
// One function for both, so the CLI and the web API cannot disagree.
import type { Config, StaticProvider } from '@nodepool-ts/core/config';
import type { Node } from '@nodepool-ts/core/model';
import { filterHosts, type HostFilter, type RuntimeHost } from './runtime-hosts.js';

export interface StaticHostRow {
  name: string;
  provider: string;
  pool: string;
  labels: string[];
  username: string;
  port: number;
  connection_type: string;
  max_parallel_jobs: number;
  os: string | null;
  tags: string[];
  source: 'config' | 'runtime';
  /** nodes registered for the host (one per slot of max-parallel-jobs) */
  registered: number;
  /** of those, ready and unallocated */
  ready: number;
}

/** A runtime host as the web API returns it: its row plus what only a runtime host has. */
export interface RuntimeHostView extends StaticHostRow {
  timeout: number;
  host_key: string[];
  /** float Unix seconds */
  added_time: number;
  added_by: string | null;
}

function slots(nodes: readonly Readonly<Node>[], provider: string, name: string): { registered: number; ready: number } {
  const mine = nodes.filter((n) => n.provider === provider && n.hostname === name);
  return { registered: mine.length, ready: mine.filter((n) => n.state === 'ready' && n.allocated_to === null).length };
}

function runtimeRow(h: RuntimeHost, nodes: readonly Readonly<Node>[]): StaticHostRow {
  return {
    name: h.name, provider: h.provider, pool: h.pool, labels: [...h.labels], username: h.username,
    port: h.connectionPort, connection_type: h.connectionType, max_parallel_jobs: h.maxParallelJobs,
    os: h.os, tags: [...h.tags], source: 'runtime', ...slots(nodes, h.provider, h.name),
  };
}

/**
 * Configured hosts (in config order) then runtime hosts (as given), with their slots counted in
 * `nodes`, filtered like Host-pool's allocation filters (provider, os, every tag).
 */
export function staticHostRows(config: Config, runtime: readonly RuntimeHost[], nodes: readonly Readonly<Node>[],
  filter: HostFilter = {}): StaticHostRow[] {
  const rows: StaticHostRow[] = [];
  const providers = [...config.providers.values()].filter((p): p is StaticProvider => p.driver === 'static');
  for (const p of providers) {
    for (const pool of p.pools) {
      for (const n of pool.nodes) {
        rows.push({
          name: n.name, provider: p.name, pool: pool.name, labels: [...n.labels], username: n.username,
          port: n.connectionPort, connection_type: n.connectionType, max_parallel_jobs: n.maxParallelJobs,
          os: null, tags: [], source: 'config', ...slots(nodes, p.name, n.name),
        });
      }
    }
  }
  for (const h of runtime) rows.push(runtimeRow(h, nodes));
  return filterHosts(rows, filter);
}

export function runtimeHostView(h: RuntimeHost, nodes: readonly Readonly<Node>[]): RuntimeHostView {
  return { ...runtimeRow(h, nodes), timeout: h.timeout, host_key: [...h.hostKey], added_time: h.addedTime, added_by: h.addedBy };
}
