// What a benchmark run leaves in the history database: the benchmark's own Zuul-like client
// (bench/zuul-client.ts) drives a real launcher process (started as bench/launcher.ts starts it),
// warm (min-ready pool) and cold, then the launcher deletes the used nodes and stops (writing what
// it holds). The database must then hold exactly one current row per node ever created, matching
// ZooKeeper, the complete ordered event trail of every node, and every request with its latency.
// Once on MariaDB (a fresh database on the server the test runner started) and once on SQLite.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { openDatabase, SPILL_FILE } from '@nodepool-ts/core/db';
import { drive, type JobRecord } from '../../bench/zuul-client.js';
import { startLauncher, stopLauncher } from '../../bench/launcher-process.js';
import { freshMysqlDatabase } from '../../packages/core/test/db-fixtures.js';
import { connectZk, fakeConfig, testEnv, waitFor } from '../helpers/harness.js';

const MIN_READY = 8;
const WARM = 240;
const COLD = 80;
const CONCURRENCY = 8;

const running = new Set<ChildProcess>();
after(() => {
  for (const p of running) p.kill('SIGKILL');
});

/**
 * A node's trail (`from>to`, ∅ for none) as the launcher records it: its own writes (init,
 * building, ready, deleting, removal) and, from the stats-election winner's watch, the client's
 * in-use and used. A watch may deliver in-use and used as one change (this client sets them back
 * to back, so that is common), so a used node shows either `ready>in-use, in-use>used` or
 * `ready>used`; `used` is always there, because the launcher deletes a node only once its own
 * cache (fed by the same watch) has seen it used. Each step starts where the previous one ended.
 */
const BOOT = ['∅>init', 'init>building', 'building>ready'];
const USED_FULL = [...BOOT, 'ready>in-use', 'in-use>used', 'used>deleting', 'deleting>∅'];
const USED_MERGED = [...BOOT, 'ready>used', 'used>deleting', 'deleting>∅'];
/** a request that waited for a launch goes through pending; one served from the pool at once does not */
const REQUEST_LAUNCHED = ['∅>requested', 'requested>pending', 'pending>fulfilled', 'fulfilled>∅'];
const REQUEST_FROM_POOL = ['∅>requested', 'requested>fulfilled', 'fulfilled>∅'];

interface NodeRow { id: string; state: string; label: string; deleted_at: number | null; ready_at: number | null; in_use_at: number | null; allocated_to: string | null }
interface EventRow { node_id: string; from_state: string | null; to_state: string | null }
interface RequestRow { id: string; state: string; requestor: string | null; labels: string; nodes: string; latency_ms: number | null; fulfilled_at: number | null; created_at: number | null; deleted_at: number | null }
interface RequestEventRow { request_id: string; from_state: string | null; to_state: string | null }

const step = (from: string | null, to: string | null): string => `${from ?? '∅'}>${to ?? '∅'}`;

function trails<T>(rows: T[], key: (r: T) => string, from: (r: T) => string | null, to: (r: T) => string | null): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const r of rows) {
    const t = out.get(key(r)) ?? [];
    t.push(step(from(r), to(r)));
    out.set(key(r), t);
  }
  return out;
}

const backends: [string, boolean][] = [['SQLite', false]];
if (process.env.NODEPOOL_TEST_MYSQL) backends.unshift(['MariaDB', true]);

for (const [name, mysql] of backends) {
  test(`after a benchmark run the ${name} history holds one current row per node and every trail`, { timeout: 300_000 }, async () => {
    const env = testEnv();
    const stateDir = join(env.dir, 'state');
    mkdirSync(stateDir, { recursive: true });
    const fresh = mysql ? await freshMysqlDatabase(process.env.NODEPOOL_TEST_MYSQL ?? '') : null;
    const zk = await connectZk(env);
    const cfg = env.write('nodepool.yaml', fakeConfig(env, {
      labels: [{ name: 'warm', minReady: MIN_READY }, { name: 'cold' }],
      top: fresh ? `dburi: '${fresh.uri}'\n` : '',
    }));
    const launcher = startLauncher(cfg, { stateDir, runDir: env.dir, logLevel: 'warn' });
    running.add(launcher);
    const jobs: JobRecord[] = [];
    let zkNodes: Awaited<ReturnType<typeof zk.getNodes>> = [];
    try {
      await waitFor('min-ready pool', async () => (await zk.getNodes()).filter((n) => n.state === 'ready').length >= MIN_READY, 60_000);
      const warm = await drive(zk, 'warm', WARM, CONCURRENCY, (r) => jobs.push(r));
      const cold = await drive(zk, 'cold', COLD, CONCURRENCY, (r) => jobs.push(r));
      assert.equal(warm.requests + cold.requests, jobs.length);
      // the launcher deletes every used node; the min-ready pool is back and no request is left
      await waitFor('used nodes deleted and the pool refilled', async () => {
        const nodes = await zk.getNodes();
        return nodes.length === MIN_READY && nodes.every((n) => n.state === 'ready' && n.allocated_to === null)
          && (await zk.getNodeRequests()).length === 0;
      }, 60_000);
      zkNodes = await zk.getNodes();
      // a clean stop writes everything the recorder holds (nothing left for a next start)
      assert.equal(await stopLauncher(launcher), 0);
      running.delete(launcher);
      assert.ok(!existsSync(join(stateDir, SPILL_FILE)), 'nothing spilled');
    } finally {
      if (running.has(launcher)) await stopLauncher(launcher);
      running.delete(launcher);
      await zk.close();
    }

    const db = await openDatabase(fresh?.uri ?? null, stateDir);
    try {
      // ---- current rows: exactly the nodes the client got plus the pool left in ZooKeeper ----
      const used = new Set(jobs.flatMap((j) => j.nodes));
      assert.equal(used.size, jobs.length, 'each job got a node of its own');
      const live = new Map(zkNodes.map((n) => [n.id ?? '', n]));
      const created = new Set([...used, ...live.keys()]);
      const rows: NodeRow[] = await db.knex('nodes').select('id', 'state', 'label', 'deleted_at', 'ready_at', 'in_use_at', 'allocated_to');
      assert.equal(rows.length, created.size, 'one current row per node');
      assert.deepEqual(new Set(rows.map((r) => r.id)), created);
      for (const r of rows) {
        const n = live.get(r.id);
        if (n) {
          assert.equal(r.deleted_at, null, `node ${r.id} is live`);
          assert.equal(r.state, n.state, `node ${r.id}: recorded state matches ZooKeeper`);
          assert.equal(r.allocated_to, null);
          assert.notEqual(r.ready_at, null);
        } else {
          assert.notEqual(r.deleted_at, null, `node ${r.id} is gone from ZooKeeper: marked deleted`);
          assert.equal(r.state, 'deleting', `node ${r.id}: last state before removal`);
          assert.notEqual(r.ready_at, null, `node ${r.id}: ready_at`);
        }
      }

      // ---- every node's full trail, in order ----
      const events: EventRow[] = await db.knex('node_events').select('node_id', 'from_state', 'to_state').orderBy('id');
      const byNode = trails(events, (e) => e.node_id, (e) => e.from_state, (e) => e.to_state);
      assert.deepEqual(new Set(byNode.keys()), created, 'a trail for every node and no other');
      for (const id of created) {
        const trail = byNode.get(id) ?? [];
        if (live.has(id)) assert.deepEqual(trail, BOOT, `pool node ${id}`);
        else if (trail.includes('ready>used')) assert.deepEqual(trail, USED_MERGED, `used node ${id} (in-use and used seen as one change)`);
        else assert.deepEqual(trail, USED_FULL, `used node ${id}`);
      }

      // ---- one successful launch attempt per node ----
      const attempts: { node_id: string; result: string }[] = await db.knex('launch_attempts').select('node_id', 'result');
      assert.deepEqual(new Set(attempts.map((a) => a.node_id)), created);
      assert.equal(attempts.length, created.size);
      assert.ok(attempts.every((a) => a.result === 'ready'));

      // ---- the client's requests: fulfilled with its node, deleted, latency recorded ----
      const reqRows: RequestRow[] = await db.knex('requests')
        .select('id', 'state', 'requestor', 'labels', 'nodes', 'latency_ms', 'fulfilled_at', 'created_at', 'deleted_at');
      const reqById = new Map(reqRows.map((r) => [r.id, r]));
      const reqEvents: RequestEventRow[] = await db.knex('request_events').select('request_id', 'from_state', 'to_state').orderBy('id');
      const byRequest = trails(reqEvents, (e) => e.request_id, (e) => e.from_state, (e) => e.to_state);
      for (const j of jobs) {
        const r = reqById.get(j.request);
        assert.ok(r, `request ${j.request} recorded`);
        assert.equal(r.state, 'fulfilled');
        assert.equal(r.requestor, 'bench-zuul');
        assert.equal(r.nodes, j.nodes.join(','));
        assert.notEqual(r.deleted_at, null, 'the client deleted it');
        assert.ok(r.fulfilled_at !== null && r.created_at !== null && r.fulfilled_at >= r.created_at);
        assert.ok(r.latency_ms !== null && r.latency_ms >= 0 && r.latency_ms < 60_000, `latency ${r.latency_ms}`);
        assert.equal(r.latency_ms, Math.round((r.fulfilled_at - r.created_at) * 1000));
        const trail = byRequest.get(j.request);
        assert.deepEqual(trail, trail?.includes('requested>pending') ? REQUEST_LAUNCHED : REQUEST_FROM_POOL, `request ${j.request}`);
      }
      // the launcher's own min-ready requests are recorded too, and every one was served
      const minReady = reqRows.filter((r) => r.requestor === 'NodePool:min-ready');
      assert.ok(minReady.length >= MIN_READY);
      assert.equal(reqRows.length, jobs.length + minReady.length);
      for (const r of minReady) {
        assert.equal(r.state, 'fulfilled', `min-ready request ${r.id}`);
        assert.notEqual(r.deleted_at, null);
        assert.deepEqual(byRequest.get(r.id), REQUEST_LAUNCHED, `min-ready request ${r.id}`);
      }
    } finally {
      await db.close();
      await fresh?.drop();
      env.cleanup();
    }
  });
}
