// Static hosts handed out to requests (§3.7, §9.5) against real sshd: reuse and re-registration,
// max-parallel-jobs under concurrent requests, dead hosts and wrong host keys never handed out
// (and back once alive), ready-scripts (pass, fail, hang), hosts added and removed at runtime.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Node } from '@nodepool-ts/core/model';
import { StaticHostStore } from '@nodepool-ts/driver-static';
import { waitFor, envWithZk } from '../helpers/harness.js';
import { currentUser, makeClientKey, startSshd, type ClientKey, type Sshd } from '../../packages/drivers/static/test/sshd.js';
import {
  providerNodes, readyOf, staticManager, staticYaml, startLauncher, submit, useNode, waitState,
} from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
let key: ClientKey;
let h1: Sshd;
let h2: Sshd;
let h3: Sshd;
let h4: Sshd;

before(async () => {
  key = await makeClientKey();
  [h1, h2, h3, h4] = await Promise.all([
    startSshd('127.0.0.71', key), startSshd('127.0.0.72', key), startSshd('127.0.0.73', key), startSshd('127.0.0.74', key),
  ]);
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  await Promise.all([h1, h2, h3, h4].map((s) => s?.destroy()));
  key?.cleanup();
});

test('a used static node is deleted and its host registered again; two static labels in one request', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const cfg = env.write('nodepool.yaml', staticYaml(env, {
    labels: [{ name: 'small' }, { name: 'large' }],
    pools: [{ name: 'main', hosts: [{ sshd: h1, labels: ['small', 'large'] }, { sshd: h2, labels: ['large'] }] }],
  }));
  await startLauncher(cfg, cleanups);
  await waitFor('both hosts ready', async () => (await providerNodes(zk)).filter((n) => n.state === 'ready').length === 2);
  const req = await waitState(zk, await submit(zk, ['small', 'large']), ['fulfilled']);
  const nodes = await Promise.all(req.nodes.map((id) => zk.getNode(id)));
  assert.deepEqual(nodes.map((n) => n?.hostname), [h1.address, h2.address]);
  assert.ok(nodes.every((n) => n?.allocated_to === req.id));
  const uses = await Promise.all(req.nodes.map((id) => useNode(zk, id)));
  await zk.deleteNodeRequest(req.id ?? '');
  for (const u of uses) await u.finish();
  const fresh = await waitFor('both re-registered', async () => {
    const ready = (await providerNodes(zk)).filter((n) => n.state === 'ready');
    return ready.length === 2 && ready.every((n) => !req.nodes.includes(n.id ?? '')) ? ready : null;
  });
  assert.deepEqual(fresh.map((n) => n.hostname).sort(), [h1.address, h2.address].sort());
});

test('max-parallel-jobs bounds concurrent hand-outs of one host', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const cfg = env.write('nodepool.yaml', staticYaml(env, {
    labels: [{ name: 'multi' }],
    pools: [{ name: 'main', hosts: [{ sshd: h2, labels: ['multi'], maxParallelJobs: 2 }] }],
  }));
  await startLauncher(cfg, cleanups);
  await waitFor('2 slots', async () => (await readyOf(zk, h2.address)).length === 2);
  const ids = await Promise.all([1, 2, 3, 4].map(() => submit(zk, ['multi'])));
  let maxSeen = 0;
  const sample = async (): Promise<void> => {
    maxSeen = Math.max(maxSeen, (await providerNodes(zk)).length);
  };
  const fulfilled = await waitFor('two fulfilled', async () => {
    await sample();
    const reqs = await Promise.all(ids.map((id) => zk.getNodeRequest(id)));
    const f = reqs.filter((r) => r?.state === 'fulfilled');
    return f.length >= 2 ? f : null;
  });
  await new Promise((r) => setTimeout(r, 500));
  const states = await Promise.all(ids.map(async (id) => (await zk.getNodeRequest(id))?.state));
  assert.equal(states.filter((s) => s === 'fulfilled').length, 2, `states ${states.join(',')}`);
  assert.equal(states.filter((s) => s === 'pending' || s === 'requested').length, 2, `states ${states.join(',')}`);
  const handed = fulfilled.flatMap((r) => r?.nodes ?? []);
  assert.equal(new Set(handed).size, 2, `two different slots: ${handed.join(',')}`);
  // one job ends: exactly one more request is served
  const first = fulfilled[0];
  assert.ok(first);
  const use = await useNode(zk, first.nodes[0] ?? '');
  await zk.deleteNodeRequest(first.id ?? '');
  await use.finish();
  let last = '';
  await waitFor('third fulfilled', async () => {
    await sample();
    const reqs = await Promise.all(ids.map((id) => zk.getNodeRequest(id)));
    last = reqs.map((r) => r?.state ?? 'gone').join(',')
      + ` nodes: ${(await providerNodes(zk)).map((n) => `${n.id}:${n.state}:${n.allocated_to}`).join(' ')}`;
    return reqs.filter((r) => r?.state === 'fulfilled').length === 2 && reqs.filter((r) => r === null).length === 1;
  }, 30_000).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; last seen: ${last}`);
  });
  await sample();
  assert.ok(maxSeen <= 2, `at most 2 slots ever existed (saw ${maxSeen})`);
});

test('a dead host is never handed out; it comes back when its sshd is back', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const cfg = env.write('nodepool.yaml', staticYaml(env, {
    labels: [{ name: 'fragile' }],
    pools: [{ name: 'main', hosts: [{ sshd: h3, labels: ['fragile'] }] }],
  }));
  const launcher = await startLauncher(cfg, cleanups);
  const [before] = await waitFor('registered', async () => ((await readyOf(zk, h3.address)).length === 1 ? readyOf(zk, h3.address) : null));
  await h3.stop();
  try {
    const id = await submit(zk, ['fragile']);
    // the liveness check at hand-out deregisters the slot instead of handing it out
    await waitFor('dead slot removed', async () => (await zk.getNode(before?.id ?? '')) === null);
    const req = await waitState(zk, id, ['pending']);
    assert.deepEqual(req.nodes, []);
    const status = (await staticManager(launcher).describeHosts()).find((h) => h.name === h3.address);
    assert.equal(status?.state, 'down');
    assert.match(status?.reason ?? '', /ECONNREFUSED/);
    await launcher.checkNodes();
    assert.equal((await providerNodes(zk)).length, 0, 'not registered while down');
    await h3.start();
    await launcher.checkNodes();
    const done = await waitState(zk, id, ['fulfilled']);
    const node = await zk.getNode(done.nodes[0] ?? '');
    assert.equal(node?.hostname, h3.address);
    assert.notEqual(node?.id, before?.id);
    assert.equal((await staticManager(launcher).describeHosts())[0]?.state, 'up');
  } finally {
    await h3.start();
  }
});

test('a host presenting another host key is refused, with the reason, until the config matches', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const spec = (hostKey: string[]) => staticYaml(env, {
    labels: [{ name: 'keyed' }],
    pools: [{ name: 'main', hosts: [{ sshd: h4, labels: ['keyed'], hostKey }] }],
  });
  const cfg = env.write('nodepool.yaml', spec([h1.hostKey('ed25519')]));
  const launcher = await startLauncher(cfg, cleanups);
  assert.equal((await providerNodes(zk)).length, 0);
  const status = (await staticManager(launcher).describeHosts())[0];
  assert.equal(status?.code, 'EHOSTKEY');
  assert.match(status?.reason ?? '', /host key mismatch/);
  const id = await submit(zk, ['keyed']);
  await waitState(zk, id, ['pending']);
  writeFileSync(cfg, spec([h4.hostKey('ed25519'), h4.hostKey('rsa')]));
  const done = await waitState(zk, id, ['fulfilled']);
  const node = await zk.getNode(done.nodes[0] ?? '');
  assert.deepEqual(node?.host_keys, [h4.hostKey('ed25519'), h4.hostKey('rsa')]);
});

test('ready-script: passing hosts are handed out, failing and hanging ones are taken out with their output', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const marker = join(env.dir, 'ran');
  const script = (name: string, body: string): void => {
    writeFileSync(join(env.dir, name), body);
    chmodSync(join(env.dir, name), 0o755);
  };
  script('ok.sh', `#!/bin/sh\necho "$NODEPOOL_NODE_ID $1" >> ${marker}\n`);
  script('fail.sh', '#!/bin/sh\necho "packstack failed: no keystone"\nexit 3\n');
  script('hang.sh', '#!/bin/sh\necho hanging\nsleep 600\n');
  const stored: { node: Node; reason: string }[] = [];
  const prev = process.env.NODEPOOL_READY_SCRIPT_TIMEOUT;
  // long enough for the passing host's SSH and script on a loaded machine, short for a test
  process.env.NODEPOOL_READY_SCRIPT_TIMEOUT = '5';
  const cfg = env.write('nodepool.yaml', staticYaml(env, {
    top: `private-key: ${key.privateKey}\nscript-dir: ${env.dir}\n`,
    labels: [{ name: 'rs-ok', readyScript: 'ok.sh' }, { name: 'rs-fail', readyScript: 'fail.sh' }, { name: 'rs-hang', readyScript: 'hang.sh' }],
    pools: [
      { name: 'slow', hosts: [{ sshd: h3, labels: ['rs-hang'] }] },
      { name: 'main', hosts: [{ sshd: h1, labels: ['rs-ok'], maxParallelJobs: 2 }, { sshd: h2, labels: ['rs-fail'] }] },
    ],
  }));
  let launcher;
  try {
    launcher = await startLauncher(cfg, cleanups, undefined, (l) => {
      l.events.on('node-stored', (node: Node, _by: string, reason: string) => stored.push({ node: { ...node }, reason }));
    });
  } finally {
    if (prev === undefined) delete process.env.NODEPOOL_READY_SCRIPT_TIMEOUT;
    else process.env.NODEPOOL_READY_SCRIPT_TIMEOUT = prev;
  }
  // the passing host: ready (both slots) after one run, while the hanging host is still running
  // (its script has not timed out yet: the other pool did not wait for it)
  const ok = await waitFor('rs-ok ready', async () => ((await readyOf(zk, h1.address)).length === 2 ? readyOf(zk, h1.address) : null));
  assert.ok(!stored.some((s) => s.node.hostname === h3.address && s.node.state === 'failed'), 'not held up by the hanging script');
  const ran = readFileSync(marker, 'utf8').trim().split('\n');
  assert.equal(ran.length, 1, 'one run per host, not per slot');
  assert.match(ran[0] ?? '', new RegExp(` ${h1.address.replace(/\./g, '\\.')}$`));
  assert.ok(ok.every((n) => n.username === currentUser()));
  // the failing host: its slot failed (output recorded), removed, not registered again
  await waitFor('rs-fail failed and gone', async () => stored.some((s) => s.node.hostname === h2.address && s.node.state === 'failed')
    && (await providerNodes(zk)).every((n) => n.hostname !== h2.address));
  const failRecord = stored.find((s) => s.node.hostname === h2.address && s.node.state === 'failed');
  assert.match(failRecord?.reason ?? '', /ready-script .*fail\.sh failed: exit 3/);
  assert.match(failRecord?.reason ?? '', /packstack failed: no keystone/);
  // the hanging host: bounded by the timeout, then failed the same way
  await waitFor('rs-hang timed out', () => stored.some((s) => s.node.hostname === h3.address && s.node.state === 'failed'), 20_000);
  assert.match(stored.find((s) => s.node.hostname === h3.address && s.node.state === 'failed')?.reason ?? '', /timed out after/);
  await new Promise((r) => setTimeout(r, 500));
  const hosts = new Map((await staticManager(launcher).describeHosts()).map((h) => [h.name, h]));
  assert.equal(hosts.get(h2.address)?.state, 'ready-script-failed');
  assert.equal(hosts.get(h3.address)?.state, 'ready-script-failed');
  assert.equal((await providerNodes(zk)).filter((n) => n.hostname !== h1.address).length, 0, 'taken out until the next check');
  // a request for the failing label is not served by a failed host
  const id = await submit(zk, ['rs-fail']);
  await waitState(zk, id, ['pending']);
  // fixed script + the next check: back in service
  script('fail.sh', '#!/bin/sh\nexit 0\n');
  await launcher.checkNodes();
  const done = await waitState(zk, id, ['fulfilled']);
  assert.equal((await zk.getNode(done.nodes[0] ?? ''))?.hostname, h2.address);
  assert.ok(!existsSync(join(env.dir, 'never')));
});

test('hosts added and removed at runtime (CLI/web store) are registered and deregistered, and survive a restart', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const cfg = env.write('nodepool.yaml', staticYaml(env, {
    labels: [{ name: 'small' }],
    pools: [{ name: 'main', hosts: [{ sshd: h1, labels: ['small'] }] }],
  }));
  const launcher = await startLauncher(cfg, cleanups);
  const store = new StaticHostStore(zk);
  await store.add(launcher.config, {
    provider: 'static-provider', name: h4.address, labels: ['small'], username: currentUser(), connectionPort: h4.port,
    hostKey: [h4.hostKey('ecdsa')], maxParallelJobs: 2, os: 'linux', tags: ['ssd'], timeout: 3,
  });
  const added = await waitFor('runtime host registered', async () => ((await readyOf(zk, h4.address)).length === 2 ? readyOf(zk, h4.address) : null));
  assert.deepEqual(added[0]?.attributes, { os: 'linux', tags: ['ssd'] });
  assert.deepEqual(added[0]?.host_keys, [h4.hostKey('ecdsa')]);
  // a restarted launcher keeps them (no duplicates)
  await launcher.stop();
  const again = await startLauncher(cfg, cleanups, 'static-test-2');
  await again.syncStatic();
  assert.equal((await providerNodes(zk)).filter((n) => n.hostname === h4.address).length, 2);
  // in use while removed: the free slot goes at once, the busy one after its job
  const req = await waitState(zk, await submit(zk, ['small', 'small']), ['fulfilled']);
  const got = await Promise.all(req.nodes.map((id) => zk.getNode(id)));
  const busy = got.find((n) => n?.hostname === h4.address);
  assert.ok(busy, 'two slots out of h1 (1) + h4 (2) include one of h4');
  const use = await useNode(zk, busy.id ?? '');
  await zk.deleteNodeRequest(req.id ?? '');
  await store.remove(h4.address);
  await waitFor('free runtime slots deregistered', async () =>
    (await providerNodes(zk)).filter((n) => n.hostname === h4.address && n.id !== busy.id).length === 0);
  assert.equal((await zk.getNode(busy.id ?? ''))?.state, 'in-use', 'the busy slot finishes its job');
  await use.finish();
  await waitFor('all runtime slots gone', async () => (await providerNodes(zk)).every((n) => n.hostname !== h4.address));
  await again.syncStatic();
  assert.equal((await providerNodes(zk)).filter((n) => n.hostname === h4.address).length, 0);
});
