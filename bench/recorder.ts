// Recorder micro-benchmark: how many events per second the Recorder sustains into SQLite and
// MariaDB (queue → batched transactions → event rows + current-row upserts), with a realistic
// mix: per node init/building/ready/in-use/used/deleting/deleted/removed, a launch attempt, and
// per request requested/pending/fulfilled/removed. Prints one JSON line:
//   {"events_per_s_sqlite": N, "events_per_s_mariadb": N}
// Details (enqueue cost, batch settings) go to stderr.
//
//   node --import tsx bench/recorder.ts [--events 200000] [--no-mariadb]
// MariaDB: $NODEPOOL_TEST_MYSQL if set (a fresh `nodepool_bench_*` database is created on that
// server), else a private server started with scripts/mariadb.sh and stopped afterwards.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { Recorder } from '@nodepool-ts/core/db';
import { configureLogging } from '@nodepool-ts/core/log';
import { newNode, newNodeRequest, type Node, type NodeRequest } from '@nodepool-ts/core/model';

configureLogging({ level: 'silent' });
const root = resolve(import.meta.dirname, '..');

const { values: opts } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    'no-mariadb': { type: 'boolean', default: false },
  },
});
const TOTAL = Number(opts.events);

const NODE_STATES: Node['state'][] = ['init', 'building', 'ready', 'in-use', 'used', 'deleting', 'deleted'];

/** Record about `total` events; returns the exact number recorded. */
function produce(rec: Recorder, total: number, offset: number): number {
  const ctx = { launcher: 'nl01-1234-PoolWorker.bench-main' };
  let count = 0;
  let i = offset;
  while (count < total) {
    const id = String(i).padStart(10, '0');
    const reqId = `100-${id}`;
    let req: NodeRequest = newNodeRequest({ id: reqId, node_types: ['ubuntu-jammy'], requestor: 'zuul.bench' });
    rec.requestChanged(null, req, ctx);
    let node: Node | null = null;
    for (const s of NODE_STATES) {
      const next: Node = newNode({
        ...(node ?? {}), id, state: s, provider: 'bench', pool: 'main', type: ['ubuntu-jammy'], launcher: ctx.launcher,
        hostname: `ubuntu-jammy-bench-${id}`, external_id: `srv-${id}`, public_ipv4: '203.0.113.9', created_time: Date.now() / 1000,
        allocated_to: s === 'init' ? null : reqId,
      });
      rec.nodeChanged(node, next, ctx);
      node = next;
      if (s === 'building') {
        const t = Date.now();
        rec.launchAttempt({ nodeId: id, provider: 'bench', pool: 'main', label: 'ubuntu-jammy', attempt: 1, startedAt: t - 5, endedAt: t, result: 'ready' });
      }
      if (s === 'ready') {
        const pending = { ...req, state: 'pending' as const };
        rec.requestChanged(req, pending, ctx);
        const fulfilled = { ...pending, state: 'fulfilled' as const, nodes: [id] };
        rec.requestChanged(pending, fulfilled, ctx);
        rec.requestChanged(fulfilled, null, ctx);
        req = fulfilled;
      }
    }
    rec.nodeChanged(node, null, ctx);
    count += 1 + NODE_STATES.length + 1 + 3 + 1;
    i++;
  }
  return count;
}

async function measure(uri: string | null, label: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'np-bench-rec-'));
  try {
    // memory bound above the total: the figure is the database path, not the spill file
    const rec = new Recorder({ databaseUri: uri, stateDir: dir, maxQueue: TOTAL * 2 });
    await rec.start();
    // warm-up (connection, statement caches)
    produce(rec, 2000, 10_000_000);
    await rec.flush(60_000);
    const before = rec.status().written;
    const t0 = process.hrtime.bigint();
    const n = produce(rec, TOTAL, 0);
    const t1 = process.hrtime.bigint();
    const ok = await rec.flush(600_000);
    const t2 = process.hrtime.bigint();
    const written = rec.status().written - before;
    await rec.stop();
    if (!ok || written < n) throw new Error(`${label}: only ${written} of ${n} events written`);
    const secs = Number(t2 - t0) / 1e9;
    const rate = Math.round(n / secs);
    process.stderr.write(`${label}: ${n} events in ${secs.toFixed(2)} s = ${rate}/s; enqueue ${(Number(t1 - t0) / n).toFixed(0)} ns/event\n`);
    return rate;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function mariadb(): Promise<{ uri: string; close(): Promise<void> }> {
  const env = process.env.NODEPOOL_TEST_MYSQL;
  if (env) {
    const url = new URL(env);
    const name = `nodepool_bench_${randomBytes(4).toString('hex')}`;
    const conn = await mysql.createConnection({ host: url.hostname, port: Number(url.port || 3306),
      user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) });
    await conn.query(`CREATE DATABASE \`${name}\``);
    url.pathname = `/${name}`;
    return {
      uri: url.toString(),
      async close() {
        await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
        await conn.end();
      },
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'np-bench-mdb-'));
  const r = spawnSync('bash', [join(root, 'scripts/mariadb.sh'), 'start', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mariadb.sh start failed: ${r.stderr}`);
  return {
    uri: r.stdout.trim(),
    async close() {
      spawnSync('bash', [join(root, 'scripts/mariadb.sh'), 'stop', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const result: { events_per_s_sqlite: number; events_per_s_mariadb: number | null } = {
  events_per_s_sqlite: await measure(null, 'sqlite'),
  events_per_s_mariadb: null,
};
if (!opts['no-mariadb']) {
  const server = await mariadb();
  try {
    result.events_per_s_mariadb = await measure(server.uri, 'mariadb');
  } finally {
    await server.close();
  }
}
process.stdout.write(JSON.stringify(result) + '\n');
