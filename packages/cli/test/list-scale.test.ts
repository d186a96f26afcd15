// `nodepool list` at scale: every node and every held lock shows, in one pipelined pass. Its
// wall time is a benchmark figure (bench/launcher.ts measures 1k and 10k nodes), not asserted
// here: timings never live in tests.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { newNode } from '@nodepool-ts/core/model';
import type { Node } from '@nodepool-ts/core/model';
import { mapLimit, paths } from '@nodepool-ts/core/zk';
import { makeFixture, runCli } from './helpers.js';
import type { Fixture } from './helpers.js';

const COUNT = Number(process.env.NODEPOOL_CLI_SCALE_NODES ?? 3_000);

let fx: Fixture;
const locked: Node[] = [];

before(async () => {
  fx = await makeFixture();
  const nodes = await mapLimit(Array.from({ length: COUNT }, (_, i) => i), 256, async (i) => {
    const node = newNode({
      state: i % 7 === 0 ? 'in-use' : 'ready', state_time: 1795779600 - i, provider: 'fake-provider', pool: 'main',
      type: ['fake-label'], external_id: `server-${i}`, public_ipv4: `10.0.${i >> 8}.${i & 255}`, public_ipv6: '',
      hostname: `fake-label-fake-provider-${i}`, launcher: 'nl01-1-PoolWorker.fake-provider-main',
    });
    await fx.zk.storeNode(node);
    // launchers lock every node they create, so in a real cluster every node has a lock dir
    await fx.zk.mkdirp(paths.nodeLock(node.id ?? ''));
    return node;
  });
  for (const node of nodes.filter((_, i) => i % 100 === 0)) {
    if (await fx.zk.lockNode(node, { blocking: false })) locked.push(node);
  }
});

after(async () => {
  for (const node of locked) await fx.zk.unlockNode(node);
  await fx.cleanup();
});

test(`list of ${COUNT} nodes shows every node and every held lock`, async () => {
  const r = await runCli(['-c', fx.configFile, 'list'], { now: 1795779600 });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.equal(lines.length, COUNT + 5); // 3 header lines, rows, bottom rule, final newline
  assert.equal(lines.filter((l) => l.endsWith('| locked   |')).length, locked.length);
});
