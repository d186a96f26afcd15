// `nodepool history` / `nodepool history --deleted` / `nodepool stats` end to end through the
// CLI's main(): a config file naming the database, history written by a real Recorder.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../cli/src/main.js';
import { Recorder } from '../src/db/index.js';
import type { Node } from '../src/model/types.js';
import {
  captureLog, makeNode, makeRequest, onEachDatabase, tempDir, withState, type FreshDb,
} from './db-fixtures.js';

type Fresh = FreshDb;

async function run(cfg: string, secure: string | null, ...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const args = ['-c', cfg, ...(secure ? ['-s', secure] : []), ...argv];
  const code = await main(args, { stdout: (t) => { out += t; }, stderr: (t) => { err += t; } });
  return { code, out, err };
}

function configFor(f: Fresh): { cfg: string; secure: string | null } {
  const cfg = join(f.stateDir, 'nodepool.yaml');
  writeFileSync(cfg, `zookeeper-servers:\n  - host: 127.0.0.1\nstate-dir: ${f.stateDir}\nlabels:\n  - name: ubuntu-bionic\n`);
  if (f.uri === null) return { cfg, secure: null };
  // the password belongs in the secure file
  const secure = join(f.stateDir, 'secure.yaml');
  writeFileSync(secure, `dburi: ${f.uri}\n`);
  return { cfg, secure };
}

/** Two nodes: 1 launched, used and deleted; 2 failed once then ready. One fulfilled request. */
async function recordScenario(f: Fresh): Promise<void> {
  const rec = new Recorder({ databaseUri: f.uri, stateDir: f.stateDir, flushIntervalMs: 10, log: captureLog().log });
  await rec.start();
  const ctx = { launcher: 'nl01-1-PoolWorker.fake-provider-main' };
  const req = makeRequest('100-0000000001', 'requested');
  rec.requestChanged(null, req, ctx);
  let n1: Node = makeNode('0000000001', 'building', { created_time: Date.now() / 1000 - 5 });
  rec.nodeChanged(null, n1, ctx);
  for (const s of ['ready', 'in-use', 'used', 'deleting', 'deleted'] as const) {
    const next = withState(n1, s, s === 'ready' ? { allocated_to: '100-0000000001' } : {});
    rec.nodeChanged(n1, next, { ...ctx, reason: s === 'deleting' ? 'used node' : null });
    n1 = next;
  }
  rec.nodeChanged(n1, null, ctx);
  rec.requestChanged(req, withState(req, 'fulfilled', { nodes: ['0000000001'] }), ctx);
  const n2 = makeNode('0000000002', 'building', { type: ['centos-7'], provider: 'other-provider' });
  rec.nodeChanged(null, n2, ctx);
  rec.launchAttempt({ nodeId: '0000000002', provider: 'other-provider', label: 'centos-7', attempt: 1,
    startedAt: Date.now() - 1000, endedAt: Date.now(), result: 'error.status', error: 'ERROR state' });
  rec.nodeChanged(n2, withState(n2, 'ready'), ctx);
  const req2 = makeRequest('200-0000000002', 'requested', { node_types: ['centos-7'] });
  rec.requestChanged(null, req2, ctx);
  rec.requestChanged(req2, withState(req2, 'failed'), { ...ctx, reason: 'declined by every pool' });
  assert.ok(await rec.flush());
  await rec.stop();
}

function suite(name: string, fresh: () => Promise<Fresh>): void {
  describe(`CLI history/stats on ${name}`, () => {
    test('history table, filters, JSON, deleted nodes and stats', async () => {
      const f = await fresh();
      try {
        const { cfg, secure } = configFor(f);
        // before anything was recorded
        const empty = await run(cfg, secure, 'history');
        assert.equal(empty.code, 0, empty.err);
        assert.match(empty.err, /no history recorded yet/);
        assert.equal(empty.out, [
          '+------+------+-------+----------+------+----+----------+--------+',
          '| Time | Node | Label | Provider | From | To | Launcher | Reason |',
          '+------+------+-------+----------+------+----+----------+--------+',
          '+------+------+-------+----------+------+----+----------+--------+',
          '',
        ].join('\n'));

        await recordScenario(f);
        const all = await run(cfg, secure, 'history');
        assert.equal(all.code, 0, all.err);
        const lines = all.out.trimEnd().split('\n');
        assert.match(lines[1] ?? '', /^\| Time +\| Node +\| Label +\| Provider +\| From +\| To +\| Launcher +\| Reason +\|$/);
        const body = lines.slice(3, -1);
        assert.equal(body.length, 9, all.out);
        assert.match(body[0] ?? '', /^\| \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \| 0000000001 \| ubuntu-bionic \| fake-provider +\| None +\| building +\| nl01-1-PoolWorker\.fake-provider-main \| None +\|$/);
        assert.ok(body.some((l) => /\| deleted +\| None +\|/.test(l)), 'removal shown as None');
        assert.ok(body.some((l) => /\| used +\| deleting +\| .* \| used node +\|$/.test(l)));

        const byNode = await run(cfg, secure, 'history', '--node', '0000000002', '--json');
        assert.equal(byNode.code, 0, byNode.err);
        const entries = JSON.parse(byNode.out) as { nodeId: string; fromState: string | null; toState: string; time: string }[];
        assert.deepEqual(entries.map((e) => [e.nodeId, e.fromState, e.toState]), [['0000000002', null, 'building'], ['0000000002', 'building', 'ready']]);
        assert.match(entries[0]?.time ?? '', /Z$/);

        const byLabel = await run(cfg, secure, 'history', '--label', 'centos-7', '--since', '1h', '--json');
        assert.equal((JSON.parse(byLabel.out) as unknown[]).length, 2);
        const byProvider = await run(cfg, secure, '--json', 'history', '--provider', 'fake-provider');
        assert.equal((JSON.parse(byProvider.out) as unknown[]).length, 7);
        const future = await run(cfg, secure, 'history', '--since', '2999-01-01T00:00:00Z', '--json');
        assert.deepEqual(JSON.parse(future.out), []);

        const requests = await run(cfg, secure, 'history', '--requests');
        assert.match(requests.out, /\| 100-0000000001 +\| requested +\| fulfilled +\|/);
        assert.match(requests.out, /\| 200-0000000002 +\| requested +\| failed +\| .* \| declined by every pool \|/);
        const oneRequest = await run(cfg, secure, 'history', '--request', '200-0000000002', '--json');
        assert.equal(oneRequest.code, 0, oneRequest.err);
        assert.deepEqual((JSON.parse(oneRequest.out) as { requestId: string; fromState: string | null; toState: string }[])
          .map((e) => [e.requestId, e.fromState, e.toState]), [['200-0000000002', null, 'requested'], ['200-0000000002', 'requested', 'failed']]);
        const mixed = await run(cfg, secure, 'history', '--requests', '--label', 'centos-7');
        assert.equal(mixed.code, 2);
        assert.match(mixed.err, /nodepool: error: argument --label: not allowed with --requests/);

        const deleted = await run(cfg, secure, 'history', '--deleted');
        assert.equal(deleted.code, 0, deleted.err);
        assert.match(deleted.out, /\| ID +\| Provider +\| Label +\| Server ID +\| Public IPv4 +\| Hostname +\| Last state +\| Created +\| Deleted +\| Lifetime +\|/);
        assert.match(deleted.out, /\| 0000000001 \| fake-provider +\| ubuntu-bionic +\| srv-0000000001 +\| 203\.0\.113\.5 +\| ubuntu-bionic-fake-0000000001 +\| deleted +\| .* \| 00:00:00:0\d +\|/);
        assert.doesNotMatch(deleted.out, /0000000002/);

        const stats = await run(cfg, secure, 'stats');
        assert.equal(stats.code, 0, stats.err);
        assert.match(stats.out, /\| Label +\| Provider +\| Launched \| Ready \| Failed \| Failed attempts \| Launch p50 \(s\) \|/);
        assert.match(stats.out, /\| Fulfil p95 \(s\) \| Min-ready requests \|/);
        assert.match(stats.out, /\| centos-7 +\| other-provider +\| 1 +\| 1 +\| 0 +\| 1 +\|/);
        assert.match(stats.out, /\| ubuntu-bionic +\| fake-provider +\| 1 +\| 1 +\| 0 +\| 0 +\| \d+\.\d +\|/);
        const statsJson = await run(cfg, secure, 'stats', '--since', '1d', '--json');
        const report = JSON.parse(statsJson.out) as { since: string; rows: { label: string; requests: number; fulfilled: number; launchP50: number; minReadyRequests: number }[] };
        const ub = report.rows.find((r) => r.label === 'ubuntu-bionic');
        assert.equal(ub?.requests, 1);
        assert.equal(ub?.fulfilled, 1);
        assert.equal(ub?.minReadyRequests, 0);
        assert.ok((ub?.launchP50 ?? 0) >= 4, 'created 5 s before ready');

        const bad = await run(cfg, secure, 'history', '--since', 'yesterday');
        assert.equal(bad.code, 2);
        assert.match(bad.err, /nodepool: error: invalid --since value 'yesterday'/);
        const unknown = await run(cfg, secure, 'stats', '--frobnicate');
        assert.equal(unknown.code, 2);
      } finally {
        await f.cleanup();
      }
    });
  });
}

onEachDatabase(suite, (serverUri) => {
  test('a wrong password in the secure file: the CLI names user and host, not the password', async () => {
    const d = tempDir();
    try {
      const url = new URL(serverUri());
      url.password = 'Sup3rWrong';
      const f: Fresh = { uri: url.toString(), stateDir: d.dir, cleanup: async () => undefined };
      const { cfg, secure } = configFor(f);
      const r = await run(cfg, secure, 'history');
      assert.equal(r.code, 1);
      assert.match(r.err, /access denied for nodepool@127\.0\.0\.1/);
      assert.ok(!r.err.includes('Sup3rWrong'));
    } finally {
      d.remove();
    }
  });
});
