// The launcher records every node and request change in the database (SQLite by default, MariaDB
// when NODEPOOL_TEST_MYSQL is set): one current row per node and the full event trail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { openDatabase, queryHistory } from '@nodepool-ts/core/db';
import { Launcher } from '@nodepool-ts/launcher';
import { connectZk, fakeConfig, testEnv, waitFor } from '../helpers/harness.js';

function kazooClient(hosts: string, labels: string, count: number): Promise<number> {
  return new Promise((resolve) => {
    const p = spawn('/usr/bin/python3', ['test/zuul/zuul_client.py', hosts, labels, '--count', String(count)], { stdio: 'ignore' });
    p.on('exit', (code) => resolve(code ?? 1));
  });
}

const backends: [string, string | null][] = [['SQLite (embedded default)', null]];
if (process.env.NODEPOOL_TEST_MYSQL) backends.push(['MariaDB', process.env.NODEPOOL_TEST_MYSQL]);

for (const [name, uri] of backends) {
  test(`node and request history is recorded on ${name}`, async () => {
    const env = testEnv();
    const zk = await connectZk(env);
    const top = uri ? `dburi: '${uri}'\n` : '';
    const cfg = env.write('nodepool.yaml', fakeConfig(env, { labels: [{ name: 'fake-label', minReady: 1 }], top }));
    const launcher = new Launcher({ configFile: cfg, hostname: 'hist', watchIntervalMs: 0 });
    await launcher.start();
    let nodeIds: string[] = [];
    try {
      await waitFor('launcher leads the stats election', () => launcher.election.isLeader);
      assert.equal(await kazooClient(env.kazooHosts, 'fake-label', 3), 0);
      await waitFor('used nodes deleted', async () => (await zk.getNodes()).every((n) => n.state === 'ready'));
      nodeIds = (await zk.getNodes()).map((n) => n.id ?? '');
      assert.ok(await launcher.recording?.recorder.flush());
    } finally {
      await launcher.stop();
      await zk.close();
    }
    const db = await openDatabase(uri, `${env.dir}/state`);
    try {
      const history = await queryHistory(db);
      const byNode = new Map<string, string[]>();
      for (const e of history) {
        const trail = byNode.get(e.nodeId) ?? [];
        trail.push(`${e.fromState ?? '∅'}>${e.toState ?? '∅'}`);
        byNode.set(e.nodeId, trail);
      }
      // The three nodes the client used went the whole way. Zuul's changes are seen through
      // watches, which may coalesce in-use and used when they follow each other closely.
      const full = [...byNode.entries()].filter(([, t]) => t.some((x) => x.endsWith('>used')) && t.at(-1)?.endsWith('>∅'));
      assert.ok(full.length >= 3, `complete trails: ${JSON.stringify([...byNode.entries()])}`);
      for (const [, trail] of full) {
        assert.equal(trail[0], '∅>init');
        assert.ok(trail.includes('building>ready'));
        assert.equal(trail.filter((t) => t.endsWith('>used')).length, 1, 'Zuul changes recorded once');
      }
      // who made each change: this launcher's workers by its id (`<hostname>-<pid>-<worker>`, as
      // Nodepool names its pool workers), Zuul's changes by nobody of ours
      const ours = `hist-${process.pid}-`;
      for (const e of history.filter((h) => full.some(([id]) => id === h.nodeId))) {
        if (e.toState === 'in-use' || e.toState === 'used') assert.equal(e.launcher, null, JSON.stringify(e));
        else assert.ok(e.launcher?.startsWith(ours), `the launcher that made ${JSON.stringify(e)}`);
      }
      assert.ok(history.some((h) => h.toState === null && h.launcher === `${ours}DeletedNodeWorker`), 'deletions name the launcher');
      const current = await db.knex('nodes').select('id', 'state');
      for (const id of nodeIds) assert.ok(current.some((r: { id: string }) => r.id === id), `current row for node ${id}`);
      const requests = await db.knex('requests').select('id', 'state');
      assert.ok(requests.filter((r: { state: string }) => r.state === 'fulfilled').length >= 3);
    } finally {
      await db.close();
      env.cleanup();
    }
  });
}
