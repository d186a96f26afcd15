// What every scenario reports: the row of docs/reliability.md plus its details. The tests assert
// on the counts (lost, leaked, double-allocated, and the bounds the issue names); the benchmark
// prints the same object as JSON and renders the table.
import assert from 'node:assert/strict';

export interface ScenarioResult {
  /** table row name, e.g. "launcher kill -9 (3 launchers)" */
  scenario: string;
  /** what load was held, in words with figures: "3 launchers, 8 Zuul jobs at once, 240 requests" */
  load: string;
  /** what was injected: "kill -9 of launcher-2 with 5 launches in flight" */
  faults: string;
  /** requests never answered (or whose znode vanished); the requirement is 0 */
  requestsLost: number;
  /** requests answered `failed` (a cloud that refuses to boot may fail requests; lost ones never) */
  requestsFailed: number;
  requestsTotal: number;
  /** nodes handed to two jobs at once; the requirement is 0 */
  doubleAllocated: number;
  /** servers without a node, nodes not at rest, requests left behind, after the settle time */
  leaked: { servers: number; nodes: number; requests: number; other: number };
  /** the recovery time of the scenario in ms (defined per scenario in `recoveryWhat`) */
  recoveryMs: number | null;
  recoveryWhat: string;
  /** bounds the issue states (asserted), e.g. "serve again within session timeout + 5 s" */
  bounds: { what: string; limitMs: number; measuredMs: number | null }[];
  /** further figures (latencies, attempts, RSS ...) */
  details: Record<string, unknown>;
  /** violations found by the scenario itself (each fails the test) */
  problems: string[];
  seconds: number;
}

export function newResult(scenario: string): ScenarioResult {
  return {
    scenario, load: '', faults: '', requestsLost: 0, requestsFailed: 0, requestsTotal: 0, doubleAllocated: 0,
    leaked: { servers: 0, nodes: 0, requests: 0, other: 0 }, recoveryMs: null, recoveryWhat: '', bounds: [],
    details: {}, problems: [], seconds: 0,
  };
}

/**
 * What fails a scenario, in words (empty: it passed): the problems it found itself, a request
 * lost, a node allocated twice, anything left behind once the load stopped and the settle time
 * passed (servers, node znodes not at rest, requests), a request failed where the fault gives no
 * reason to fail one, a bound the issue states exceeded. The tests assert this list is empty;
 * the benchmark prints it as the verdict, so the table and the tests judge alike.
 */
export function violations(r: ScenarioResult, opts: { allowFailed?: boolean } = {}): string[] {
  const out = [...(r.problems ?? [])];
  if (r.requestsLost > 0) out.push(`${r.requestsLost} request(s) lost`);
  if (r.doubleAllocated > 0) out.push(`${r.doubleAllocated} node(s) allocated twice`);
  const l = r.leaked ?? { servers: 0, nodes: 0, requests: 0, other: 0 };
  const left = [l.servers ? `${l.servers} server(s)` : '', l.nodes ? `${l.nodes} node(s)` : '',
    l.requests ? `${l.requests} request(s)` : '', l.other ? `${l.other} other` : ''].filter(Boolean);
  if (left.length > 0) out.push(`left behind after settling: ${left.join(', ')}`);
  if (!opts.allowFailed && r.requestsFailed > 0) out.push(`${r.requestsFailed} request(s) failed`);
  for (const b of r.bounds ?? []) {
    if (b.measuredMs === null || b.measuredMs > b.limitMs) {
      out.push(`bound "${b.what}" exceeded: measured ${b.measuredMs === null ? 'never' : fmtMs(b.measuredMs)}, limit ${fmtMs(b.limitMs)}`);
    }
  }
  return out;
}

/** The checks every scenario test makes: nothing lost, leaked or allocated twice; bounds held. */
export function assertClean(r: ScenarioResult, opts: { allowFailed?: boolean } = {}): void {
  assert.deepEqual(violations(r, opts), [], `scenario "${r.scenario}" failed:\n${JSON.stringify(r, null, 2)}`);
}

export function fmtMs(ms: number | null): string {
  if (ms === null) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}
