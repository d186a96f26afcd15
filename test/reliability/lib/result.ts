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

/** The checks every scenario test makes: nothing lost, leaked or allocated twice; bounds held. */
export function assertClean(r: ScenarioResult, opts: { allowFailed?: boolean } = {}): void {
  const context = JSON.stringify(r, null, 2);
  assert.deepEqual(r.problems, [], `problems found:\n${context}`);
  assert.equal(r.requestsLost, 0, `requests lost:\n${context}`);
  assert.equal(r.doubleAllocated, 0, `nodes allocated twice:\n${context}`);
  assert.deepEqual(r.leaked, { servers: 0, nodes: 0, requests: 0, other: 0 }, `leaks:\n${context}`);
  if (!opts.allowFailed) assert.equal(r.requestsFailed, 0, `requests failed:\n${context}`);
  for (const b of r.bounds) {
    assert.ok(b.measuredMs !== null && b.measuredMs <= b.limitMs,
      `bound "${b.what}": measured ${b.measuredMs} ms, limit ${b.limitMs} ms\n${context}`);
  }
}

export function fmtMs(ms: number | null): string {
  if (ms === null) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}
