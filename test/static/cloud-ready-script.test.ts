// ready-script on launched (cloud) nodes: it runs after the key scan, before the node is READY,
// so a node whose script cannot pass is never handed out (fake cloud: its addresses are not
// reachable, so the script fails within its bound and the launch fails with the reason).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import type { Node } from '@nodepool-ts/core/model';
import { connectZk, fakeConfig, testEnv } from '../helpers/harness.js';
import { makeClientKey } from '../../packages/drivers/static/test/sshd.js';
import { startLauncher, submit, waitState } from './helpers.js';

interface LaunchAttempt {
  result: string;
  error: string | null;
}

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('a cloud node whose ready-script fails is not handed out; labels without one are unaffected', async () => {
  const env = testEnv();
  const zk = await connectZk(env);
  const key = await makeClientKey();
  cleanups.push(async () => {
    await zk.close();
    env.cleanup();
    key.cleanup();
  });
  writeFileSync(join(env.dir, 'prepare.sh'), '#!/bin/sh\nexit 0\n');
  chmodSync(join(env.dir, 'prepare.sh'), 0o755);
  const yaml = fakeConfig(env, {
    labels: [{ name: 'plain' }, { name: 'prepared' }],
    top: `private-key: ${key.privateKey}\nscript-dir: ${env.dir}\n`,
    providerExtra: '    launch-retries: 1\n',
  }).replace('  - name: prepared\n    min-ready: 0', '  - name: prepared\n    min-ready: 0\n    ready-script: prepare.sh');
  const cfg = env.write('nodepool.yaml', yaml);
  const prev = process.env.NODEPOOL_READY_SCRIPT_TIMEOUT;
  process.env.NODEPOOL_READY_SCRIPT_TIMEOUT = '2';
  cleanups.push(() => {
    if (prev === undefined) delete process.env.NODEPOOL_READY_SCRIPT_TIMEOUT;
    else process.env.NODEPOOL_READY_SCRIPT_TIMEOUT = prev;
  });
  const launcher = await startLauncher(cfg, cleanups);
  const attempts: { node: Node; attempt: LaunchAttempt }[] = [];
  launcher.events.on('launch-attempt', (node: Node, _by: string, attempt: LaunchAttempt) => attempts.push({ node, attempt }));

  const plain = await waitState(zk, await submit(zk, ['plain']), ['fulfilled', 'failed']);
  assert.equal(plain.state, 'fulfilled');

  const t0 = Date.now();
  const prepared = await waitState(zk, await submit(zk, ['prepared']), ['fulfilled', 'failed']);
  assert.equal(prepared.state, 'failed');
  assert.ok(Date.now() - t0 < 10_000, 'bounded by the ready-script timeout');
  const failed = attempts.find((a) => a.node.type.includes('prepared'));
  assert.equal(failed?.attempt.result, 'error.readyscript');
  assert.match(failed?.attempt.error ?? '', /ready-script .*prepare\.sh failed on node/);
});
