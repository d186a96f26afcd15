// `nodepool static-host add|list|remove` against a real ZooKeeper, with a launcher and a real
// sshd registering what the command adds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import { main } from '../../packages/cli/src/main.js';
import { connectZk, testEnv, waitFor, type TestEnv } from '../helpers/harness.js';
import { currentUser, makeClientKey, startSshd, type ClientKey, type Sshd } from '../../packages/drivers/static/test/sshd.js';
import { providerNodes, readyOf, staticYaml, startLauncher } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
let key: ClientKey;
let h1: Sshd;
let h2: Sshd;
let env: TestEnv;
let zk: ZooKeeper;
let cfg: string;

before(async () => {
  key = await makeClientKey();
  [h1, h2] = await Promise.all([startSshd('127.0.0.81', key), startSshd('127.0.0.82', key)]);
  env = testEnv();
  zk = await connectZk(env);
  cfg = env.write('nodepool.yaml', staticYaml(env, {
    labels: [{ name: 'small' }, { name: 'large' }],
    pools: [{ name: 'main', hosts: [{ sshd: h1, labels: ['small', 'large'] }] }],
  }));
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  await zk?.close();
  env?.cleanup();
  await Promise.all([h1, h2].map((s) => s?.destroy()));
  key?.cleanup();
});

/** `nodepool -c <cfg> static-host ...` through the CLI's own dispatch. */
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['-c', cfg, 'static-host', ...argv], {
    stdout: (t) => { out += t; },
    stderr: (t) => { err += t; },
  });
  return { code, out, err };
}

test('static-host add / list / remove drive the launchers', async () => {
  await startLauncher(cfg, cleanups);
  await waitFor('configured host registered', async () => (await readyOf(zk, h1.address)).length === 1);

  const add = await cli('add', h2.address, '--provider', 'static-provider', '--label', 'small', '--label=large',
    '--username', currentUser(), '--port', String(h2.port), '--max-parallel-jobs', '2', '--host-key', h2.hostKey('ed25519'),
    '--os', 'linux', '--tag', 'ssd,fast', '--timeout', '3');
  assert.equal(add.code, 0, add.err);
  assert.equal(add.out, `Added static host ${h2.address} to provider static-provider pool main\n`);
  await waitFor('runtime host registered', async () => (await readyOf(zk, h2.address)).length === 2);

  const list = await cli('list');
  assert.equal(list.code, 0, list.err);
  const lines = list.out.trimEnd().split('\n');
  assert.match(lines[1] ?? '', /\| Name +\| Provider +\| Pool \| Labels +\| Username \| Port +\| Type \| Parallel \| OS +\| Tags +\| Source +\| Registered \| Ready \|/);
  assert.ok(lines.some((l) => l.includes(`| ${h1.address} `) && /\| config +\| 1 +\| 1 +\|$/.test(l)), list.out);
  assert.ok(lines.some((l) => l.includes(`| ${h2.address} `) && l.includes('| linux |') && l.includes('ssd,fast') && /\| runtime \| 2 +\| 2 +\|$/.test(l)), list.out);

  const filtered = await cli('list', '--tag', 'fast', '--json');
  const rows = JSON.parse(filtered.out) as { name: string; source: string; ready: number }[];
  assert.deepEqual(rows.map((r) => [r.name, r.source, r.ready]), [[h2.address, 'runtime', 2]]);
  assert.deepEqual(JSON.parse((await cli('list', '--os', 'windows', '--json')).out), []);

  const dup = await cli('add', h1.address, '--provider', 'static-provider', '--label', 'small');
  assert.equal(dup.code, 1);
  assert.match(dup.err, /already configured in provider "static-provider" pool "main"/);
  const bad = await cli('add', 'x.example', '--provider', 'static-provider', '--label', 'nope');
  assert.equal(bad.code, 1);
  assert.match(bad.err, /label "nope" is not defined/);
  const usage = await cli('add', 'x.example', '--label', 'small');
  assert.equal(usage.code, 2);
  assert.match(usage.err, /required: --provider/);

  const rm = await cli('remove', h2.address);
  assert.equal(rm.code, 0, rm.err);
  assert.equal(rm.out, `Removed static host ${h2.address} from provider static-provider pool main\n`);
  await waitFor('runtime host deregistered', async () => (await providerNodes(zk)).every((n) => n.hostname !== h2.address));
  const again = await cli('remove', h2.address);
  assert.equal(again.code, 1);
  assert.match(again.err, /no runtime static host/);
  const help = await cli('--help');
  assert.equal(help.code, 0);
  assert.match(help.out, /usage: nodepool static-host/);
});
