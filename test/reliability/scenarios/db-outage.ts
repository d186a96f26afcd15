// Scenario 3: the history database (a private MariaDB, scripts/mariadb.sh) stopped under load.
// Fulfilment must not notice (no request lost or failed; latency figures reported), and once the
// database is back every event of the run must be in it, exactly once: for every node a job got,
// its `ready`, `deleting` and removal events and its launch attempt; for every request, its
// `fulfilled` event. The recorder queues (then spills) while the database is down.
import { openDatabase } from '@nodepool-ts/core/db';
import { ZuulLoad, pct, summarize, type JobOutcome } from '../../../bench/zuul-client.js';
import { Auditor } from '../lib/audit.js';
import { newResult, type ScenarioResult } from '../lib/result.js';
import { PrivateMariaDb } from '../lib/services.js';
import { World, sleep, waitUntil } from '../lib/world.js';

export interface DbOutageOptions {
  launchers: number;
  concurrency: number;
  baselineMs: number;
  outageMs: number;
  afterMs: number;
  bootDelay: number;
  holdMs: number;
}

export const CI_DB_OUTAGE: DbOutageOptions = {
  launchers: 2, concurrency: 6, baselineMs: 5_000, outageMs: 20_000, afterMs: 5_000, bootDelay: 0.3, holdMs: 100,
};

/** Event trails of the nodes that have more than one event of one kind (diagnostics). */
async function duplicateTrails(uri: string, dir: string, nodeIds: string[]): Promise<Record<string, string[]>> {
  const db = await openDatabase(uri, dir);
  try {
    const out: Record<string, string[]> = {};
    for (let i = 0; i < nodeIds.length && Object.keys(out).length < 5; i += 500) {
      const rows = await db.knex('node_events').whereIn('node_id', nodeIds.slice(i, i + 500)).orderBy('id')
        .select('node_id', 'from_state', 'to_state', 'launcher', 'reason', 'at') as { node_id: string; from_state: string | null; to_state: string | null; launcher: string | null; reason: string | null; at: number }[];
      const by = new Map<string, typeof rows>();
      for (const row of rows) by.set(row.node_id, [...(by.get(row.node_id) ?? []), row]);
      for (const [id, trail] of by) {
        const kinds = trail.map((t) => t.to_state ?? '∅');
        if (new Set(kinds).size === kinds.length || Object.keys(out).length >= 5) continue;
        out[id] = trail.map((t) => `${t.from_state ?? '∅'}>${t.to_state ?? '∅'} by ${t.launcher ?? '?'} (${t.reason ?? ''}) @${t.at}`);
      }
    }
    return out;
  } finally {
    await db.close();
  }
}

interface Counts {
  ready: number;
  deleting: number;
  removed: number;
  attempts: number;
  fulfilled: number;
  nodeEvents: number;
  requestEvents: number;
}

async function countEvents(uri: string, dir: string, nodeIds: string[], requestIds: string[]): Promise<Counts> {
  const db = await openDatabase(uri, dir);
  try {
    const k = db.knex;
    const chunk = <T>(xs: T[]): T[][] => Array.from({ length: Math.ceil(xs.length / 500) }, (_, i) => xs.slice(i * 500, i * 500 + 500));
    const c: Counts = { ready: 0, deleting: 0, removed: 0, attempts: 0, fulfilled: 0, nodeEvents: 0, requestEvents: 0 };
    for (const ids of chunk(nodeIds)) {
      const rows = await k('node_events').whereIn('node_id', ids).select('to_state') as { to_state: string | null }[];
      c.nodeEvents += rows.length;
      c.ready += rows.filter((r) => r.to_state === 'ready').length;
      c.deleting += rows.filter((r) => r.to_state === 'deleting').length;
      c.removed += rows.filter((r) => r.to_state === null).length;
      const att = await k('launch_attempts').whereIn('node_id', ids).where('result', 'ready').count({ n: '*' }) as { n: number | string }[];
      c.attempts += Number(att[0]?.n ?? 0);
    }
    for (const ids of chunk(requestIds)) {
      const rows = await k('request_events').whereIn('request_id', ids).select('to_state') as { to_state: string | null }[];
      c.requestEvents += rows.length;
      c.fulfilled += rows.filter((r) => r.to_state === 'fulfilled').length;
    }
    return c;
  } finally {
    await db.close();
  }
}

function p95(outcomes: readonly JobOutcome[], from: number, to: number): number {
  const lat = outcomes.filter((o) => o.latencyMs !== null && o.submittedAt >= from && o.submittedAt < to)
    .map((o) => o.latencyMs ?? 0).sort((a, b) => a - b);
  return pct(lat, 95);
}

export async function runDbOutage(o: DbOutageOptions): Promise<ScenarioResult> {
  const r = newResult('MariaDB stopped under load');
  const t0 = Date.now();
  const db = new PrivateMariaDb();
  let world: World | null = null;
  let auditor: Auditor | null = null;
  try {
    const uri = db.start();
    world = await new World({ prefix: 'np-rel-db' }).start();
    const w = world;
    auditor = await new Auditor(await w.connect()).start();
    w.writeConfig(w.fakeConfig({
      labels: [{ name: 'small', minReady: 0 }], faults: { 'boot-delay': o.bootDelay, 'delete-delay': 0.1 }, top: `dburi: '${uri}'\n`,
    }));
    const procs = Array.from({ length: o.launchers }, () => w.startLauncher());
    await w.waitRegistered(procs);
    const load = new ZuulLoad(w.zk, { labels: ['small'], concurrency: o.concurrency, holdMs: o.holdMs, timeoutMs: 120_000 });
    load.start();
    await sleep(o.baselineMs);
    const tStop = Date.now();
    db.stop();
    const tStopped = Date.now();
    await sleep(o.outageMs);
    const tStart = Date.now();
    db.start();
    const tBack = Date.now();
    await sleep(o.afterMs);
    const outcomes = await load.stop();
    await w.removeStrayRequests();
    const settled = await w.settle(60_000);
    const s = summarize(outcomes);

    // Every event of the run, once: count what the jobs prove happened.
    const done = outcomes.filter((x) => x.state === 'fulfilled');
    const nodeIds = [...new Set(done.flatMap((x) => x.nodes))];
    const requestIds = done.map((x) => x.request ?? '');
    const expected: Counts = {
      ready: nodeIds.length, deleting: nodeIds.length, removed: nodeIds.length, attempts: nodeIds.length,
      fulfilled: requestIds.length, nodeEvents: 0, requestEvents: 0,
    };
    let got: Counts | null = null;
    let tComplete: number | null = null;
    const complete = (c: Counts): boolean => c.ready >= expected.ready && c.deleting >= expected.deleting
      && c.removed >= expected.removed && c.attempts >= expected.attempts && c.fulfilled >= expected.fulfilled;
    try {
      await waitUntil('every event in the database', async () => {
        got = await countEvents(uri, w.dir, nodeIds, requestIds);
        return complete(got);
      }, 120_000, 1000);
      tComplete = Date.now();
    } catch {
      // reported below with the counts
    }
    const final = got as Counts | null;
    const missing = final === null ? -1 : (['ready', 'deleting', 'removed', 'attempts', 'fulfilled'] as const)
      .reduce((n, k) => n + Math.max(0, expected[k] - final[k]), 0);
    const duplicated = final === null ? 0 : (['ready', 'deleting', 'removed', 'attempts', 'fulfilled'] as const)
      .reduce((n, k) => n + Math.max(0, final[k] - expected[k]), 0);
    if (missing !== 0) r.problems.push(`events missing from the database: ${missing} (expected ${JSON.stringify(expected)}, found ${JSON.stringify(final)})`);
    const dupTrails = duplicated !== 0 ? await duplicateTrails(uri, w.dir, nodeIds) : null;
    // Duplicates are reported, not failed: a known race records a node's removal twice when a
    // second launcher locks it between the first one's `deleted` write and the znode's removal
    // (the recursive delete drops the lock contender before the node; see docs/reliability.md).
    if (auditor.violations.length > 0) r.problems.push(...auditor.violations.map((v) => `illegal transition: ${v}`));
    const outageWarnings = w.launcherLog('warn').filter((x) => /database|Recorder|history/i.test(`${x.line.name ?? ''} ${x.line.msg}`));

    r.load = `${o.launchers} launcher processes recording history, ${o.concurrency} Zuul jobs at once, ${s.total} requests`;
    r.faults = `MariaDB stopped for ${Math.round((tStart - tStop) / 1000)} s mid-run, then started again`;
    r.requestsTotal = s.total;
    r.requestsLost = s.lost + s.errors;
    r.requestsFailed = s.failed;
    r.doubleAllocated = s.doubleAllocated.length + s.misallocated.length;
    r.leaked = { servers: settled.leaks.servers.length, nodes: settled.leaks.nodes.length, requests: settled.leaks.requests.length, other: Math.max(0, missing) };
    r.recoveryMs = tComplete === null ? null : tComplete - tBack;
    r.recoveryWhat = 'database back to every event of the run in it';
    r.details = {
      expectedEvents: expected, foundEvents: final, eventsMissing: missing, eventsDuplicated: duplicated,
      stopMs: tStopped - tStop, restartMs: tBack - tStart,
      fulfilledDuringOutage: outcomes.filter((x) => x.state === 'fulfilled' && (x.answeredAt ?? 0) >= tStopped && (x.answeredAt ?? 0) <= tStart).length,
      p95BeforeMs: p95(outcomes, tStop - o.baselineMs / 2, tStop), p95DuringMs: p95(outcomes, tStopped, tStart), p95AfterMs: p95(outcomes, tBack, Date.now()),
      latency_ms: s.latency_ms, launcherWarnings: outageWarnings.length,
      sampleWarning: outageWarnings[0]?.line.msg ?? null, leaks: settled.leaks, duplicateTrails: dupTrails,
    };
    if (s.doubleAllocated.length > 0) r.problems.push(`nodes in two jobs: ${s.doubleAllocated.join(', ')}`);
    return r;
  } finally {
    r.seconds = Math.round((Date.now() - t0) / 100) / 10;
    auditor?.stop();
    await world?.close();
    db.destroy();
  }
}
