// Static driver registration (§3.7, §9.5) with a real launcher, real ZooKeeper and real sshd
// hosts: Nodepool's node fields, config changes applied without a restart, unknown and missing
// registrations, several launchers on one provider, hosts that cannot be reached.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { newNode } from '@nodepool-ts/core/model';
import { paths } from '@nodepool-ts/core/zk';
import { waitFor, envWithZk } from '../helpers/harness.js';
import { makeClientKey, startSshd, type ClientKey, type Sshd } from '../../packages/drivers/static/test/sshd.js';
import {
  providerNodes, readyOf, staticManager, staticYaml, startLauncher, submit, useNode, waitState, type StaticYaml,
} from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
let key: ClientKey;
let h1: Sshd;
let h2: Sshd;
let h3: Sshd;

before(async () => {
  key = await makeClientKey();
  [h1, h2, h3] = await Promise.all([
    startSshd('127.0.0.61', key), startSshd('127.0.0.62', key), startSshd('127.0.0.63', key),
  ]);
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  await Promise.all([h1, h2, h3].map((s) => s?.destroy()));
  key?.cleanup();
});

test('each host is registered as READY nodes carrying Nodepool\'s static fields', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const cfg = env.write('nodepool.yaml', staticYaml(env, {
    labels: [{ name: 'small' }, { name: 'large' }],
    pools: [{
      name: 'main',
      extra: '        node-attributes:\n          rack: r1\n',
      hosts: [
        { sshd: h1, labels: ['small', 'large'], hostKey: [h1.hostKey('ed25519')] },
        { sshd: h2, labels: ['small'], hostKey: null, maxParallelJobs: 2 },
      ],
    }],
  }));
  await startLauncher(cfg, cleanups);
  const nodes = await waitFor('3 registrations', async () => {
    const n = await providerNodes(zk);
    return n.length === 3 && n.every((x) => x.state === 'ready') ? n : null;
  });
  const n1 = nodes.find((n) => n.hostname === h1.address);
  assert.ok(n1);
  assert.equal(n1.launcher, 'static driver');
  assert.equal(n1.pool, 'main');
  assert.deepEqual(n1.type, ['small', 'large']);
  assert.equal(n1.interface_ip, h1.address);
  assert.equal(n1.public_ipv4, h1.address);
  assert.equal(n1.connection_port, h1.port);
  assert.equal(n1.connection_type, 'ssh');
  assert.equal(n1.username, process.env.USER ?? 'root');
  assert.deepEqual(n1.host_keys, [h1.hostKey('ed25519')]);
  assert.equal(n1.external_id, null);
  assert.equal(n1.allocated_to, null);
  assert.deepEqual(n1.attributes, { rack: 'r1' });
  const raw = JSON.parse((await zk.getData(paths.node(n1.id ?? '')))?.toString() ?? '{}') as Record<string, unknown>;
  assert.equal(raw.ssh_port, h1.port);
  assert.equal(raw.connection_port, h1.port);
  // no host-key configured: the scanned keys are recorded (what Zuul puts in known_hosts)
  const n2 = nodes.filter((n) => n.hostname === h2.address);
  assert.equal(n2.length, 2, 'one node per max-parallel-jobs slot');
  assert.deepEqual([...(n2[0]?.host_keys ?? [])].sort(), [...h2.hostKeys].sort());
});

test('config changes apply without a restart: slots, hosts, labels/user/type, removal (in-use finishes first)', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const spec = (over: Partial<StaticYaml> = {}): StaticYaml => ({
    labels: [{ name: 'small' }, { name: 'large' }],
    pools: [{ name: 'main', hosts: [{ sshd: h1, labels: ['small'] }] }],
    ...over,
  });
  const cfg = env.write('nodepool.yaml', staticYaml(env, spec()));
  const launcher = await startLauncher(cfg, cleanups);
  const first = await waitFor('h1 registered', async () => ((await readyOf(zk, h1.address)).length === 1 ? readyOf(zk, h1.address) : null));

  // parallel increase + node increase
  writeFileSync(cfg, staticYaml(env, spec({ pools: [{ name: 'main', hosts: [
    { sshd: h1, labels: ['small'], maxParallelJobs: 3 }, { sshd: h2, labels: ['large'] },
  ] }] })));
  await waitFor('3 slots of h1 and 1 of h2', async () =>
    (await readyOf(zk, h1.address)).length === 3 && (await readyOf(zk, h2.address)).length === 1);
  assert.ok((await readyOf(zk, h1.address)).some((n) => n.id === first[0]?.id), 'existing slot kept');

  // labels, username and connection-type updated in place (winrm ⇒ no host keys)
  writeFileSync(cfg, staticYaml(env, spec({ pools: [{ name: 'main', hosts: [
    { sshd: h1, labels: ['small', 'large'], maxParallelJobs: 3 },
    { sshd: h2, labels: ['large'], username: 'zuul-worker', connectionType: 'winrm', hostKey: null },
  ] }] })));
  const updated = await waitFor('in-place updates', async () => {
    const a = await readyOf(zk, h1.address);
    const b = await readyOf(zk, h2.address);
    return a.length === 3 && a.every((n) => n.type.length === 2) && b.length === 1 && b[0]?.connection_type === 'winrm' ? { a, b } : null;
  });
  assert.deepEqual(updated.a.map((n) => n.type), [['small', 'large'], ['small', 'large'], ['small', 'large']]);
  assert.equal(updated.b[0]?.username, 'zuul-worker');
  assert.deepEqual(updated.b[0]?.host_keys, []);

  // parallel decrease: surplus READY slots deregistered
  writeFileSync(cfg, staticYaml(env, spec({ pools: [{ name: 'main', hosts: [
    { sshd: h1, labels: ['small', 'large'], maxParallelJobs: 1 },
    { sshd: h2, labels: ['large'], username: 'zuul-worker', connectionType: 'winrm', hostKey: null },
  ] }] })));
  await waitFor('h1 back to one slot', async () => (await providerNodes(zk)).filter((n) => n.hostname === h1.address).length === 1);

  // removal of a host whose node is in use: READY slots go at once, the in-use one after its job
  const req = await submit(zk, ['small']);
  const done = await waitState(zk, req, ['fulfilled']);
  const inUse = await useNode(zk, done.nodes[0] ?? '');
  await zk.deleteNodeRequest(req);
  writeFileSync(cfg, staticYaml(env, spec({ pools: [{ name: 'main', hosts: [
    { sshd: h2, labels: ['large'], username: 'zuul-worker', connectionType: 'winrm', hostKey: null },
  ] }] })));
  await waitFor('config reloaded', () => {
    const pool = launcher.config.providers.get('static-provider')?.pools[0];
    return pool !== undefined && 'nodes' in pool && pool.nodes.length === 1;
  });
  await launcher.syncStatic();
  assert.equal((await zk.getNode(done.nodes[0] ?? ''))?.state, 'in-use', 'a node in use is left alone');
  await inUse.finish();
  await waitFor('used node of the removed host deleted', async () => (await zk.getNode(done.nodes[0] ?? '')) === null);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await providerNodes(zk)).filter((n) => n.hostname === h1.address).length, 0, 'not re-registered');
  assert.equal((await readyOf(zk, h2.address)).length, 1);
});

test('registrations of unknown hosts are removed; a deleted registration is recreated', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const cfg = env.write('nodepool.yaml', staticYaml(env, {
    labels: [{ name: 'small' }],
    pools: [{ name: 'main', hosts: [{ sshd: h1, labels: ['small'] }] }],
  }));
  const launcher = await startLauncher(cfg, cleanups);
  const [n] = await waitFor('registered', async () => ((await readyOf(zk, h1.address)).length === 1 ? readyOf(zk, h1.address) : null));
  const ghost = newNode({ state: 'ready', provider: 'static-provider', pool: 'main', launcher: 'static driver',
    type: ['small'], hostname: 'ghost.example', interface_ip: 'ghost.example' });
  await zk.storeNode(ghost);
  // the znode of the registered slot vanishes (operator, or a lost delete)
  await zk.deleteNode(n ?? newNode());
  await launcher.runCleanup();
  await waitFor('ghost removed', async () => (await zk.getNode(ghost.id ?? '')) === null);
  const again = await waitFor('h1 re-registered', async () => ((await readyOf(zk, h1.address)).length === 1 ? readyOf(zk, h1.address) : null));
  assert.notEqual(again[0]?.id, n?.id);
});

test('two launchers serving one static provider register every slot exactly once', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const cfg = env.write('nodepool.yaml', staticYaml(env, {
    labels: [{ name: 'small' }],
    pools: [{ name: 'main', hosts: [{ sshd: h1, labels: ['small'], maxParallelJobs: 3 }, { sshd: h2, labels: ['small'], maxParallelJobs: 2 }] }],
  }));
  const [a, b] = await Promise.all([startLauncher(cfg, cleanups, 'launcher-a'), startLauncher(cfg, cleanups, 'launcher-b')]);
  await Promise.all([a.syncStatic(), b.syncStatic(), a.runCleanup(), b.runCleanup(), a.syncStatic(), b.syncStatic()]);
  const nodes = await providerNodes(zk);
  assert.equal(nodes.filter((n) => n.hostname === h1.address).length, 3);
  assert.equal(nodes.filter((n) => n.hostname === h2.address).length, 2);
  // a used slot comes back once, whichever launcher deletes it
  const req = await submit(zk, ['small']);
  const done = await waitState(zk, req, ['fulfilled']);
  const use = await useNode(zk, done.nodes[0] ?? '');
  await zk.deleteNodeRequest(req);
  await use.finish();
  await waitFor('used slot replaced', async () => (await zk.getNode(done.nodes[0] ?? '')) === null
    && (await providerNodes(zk)).filter((n) => n.state === 'ready').length === 5);
  await Promise.all([a.syncStatic(), b.syncStatic()]);
  assert.equal((await providerNodes(zk)).length, 5);
});

test('unresolvable and unreachable hosts are skipped with a reason; the others serve requests', async () => {
  const { env, zk } = await envWithZk(cleanups);
  // a "host" that accepts TCP but never says a word: only the timeout ends the check
  const silent = createServer((sock) => sock.resume());
  await new Promise<void>((r) => silent.listen(0, '127.0.0.64', () => r()));
  cleanups.push(() => new Promise<void>((r) => silent.close(() => r())));
  const addr = silent.address();
  const silentPort = typeof addr === 'object' && addr !== null ? addr.port : 0;
  const cfg = env.write('nodepool.yaml', staticYaml(env, {
    labels: [{ name: 'small' }, { name: 'flaky' }],
    pools: [
      { name: 'bad', hosts: [
        { sshd: h3, name: 'no-such-host.invalid', labels: ['flaky'], timeout: 2 },
        { sshd: h3, name: '127.0.0.64', port: silentPort, labels: ['flaky'], timeout: 1 },
      ] },
      { name: 'good', hosts: [{ sshd: h3, labels: ['small'] }] },
    ],
  }));
  const t0 = Date.now();
  const launcher = await startLauncher(cfg, cleanups);
  assert.ok(Date.now() - t0 < 8000, `start took ${Date.now() - t0} ms`);
  const nodes = await providerNodes(zk);
  assert.deepEqual(nodes.map((n) => n.hostname), [h3.address]);
  const hosts = await staticManager(launcher).describeHosts();
  const byName = new Map(hosts.map((h) => [h.name, h]));
  assert.equal(byName.get('no-such-host.invalid')?.state, 'down');
  assert.equal(byName.get('no-such-host.invalid')?.code, 'EDNS');
  assert.equal(byName.get('127.0.0.64')?.code, 'EKEYSCAN');
  assert.match(byName.get('127.0.0.64')?.reason ?? '', /SSH handshake timed out/);
  assert.equal(byName.get(h3.address)?.state, 'up');
  const done = await waitState(zk, await submit(zk, ['small']), ['fulfilled']);
  assert.equal((await zk.getNode(done.nodes[0] ?? ''))?.hostname, h3.address);
  // a request for the dead hosts' label waits (static pools never launch) without holding up others
  const flaky = await submit(zk, ['flaky']);
  await waitState(zk, flaky, ['pending']);
  await zk.deleteNodeRequest(done.id ?? ''); // Zuul is done with it: the node is free again
  const again = await waitState(zk, await submit(zk, ['small'], { reuse: true }), ['fulfilled']);
  assert.equal(again.state, 'fulfilled');
});

test('host-key-checking: false registers a host without contacting it (as Nodepool); python-path and shell-type reach the node', async () => {
  const { env, zk } = await envWithZk(cleanups);
  // nothing listens here: with checking on the host would be down
  const cfg = env.write('nodepool.yaml', staticYaml(env, {
    labels: [{ name: 'small' }, { name: 'unchecked' }],
    pools: [{ name: 'main', hosts: [
      { sshd: h3, name: '127.0.0.65', port: 1, labels: ['unchecked'], hostKey: [h3.hostKey('ed25519')],
        more: ['host-key-checking: false', 'python-path: /usr/bin/python3', 'shell-type: sh'] },
      { sshd: h3, labels: ['small'] },
    ] }],
  }));
  const launcher = await startLauncher(cfg, cleanups);
  const [node] = await waitFor('the unchecked host registered', async () => {
    const n = await readyOf(zk, '127.0.0.65');
    return n.length === 1 ? n : null;
  });
  assert.deepEqual(node?.host_keys, [h3.hostKey('ed25519')], 'its configured keys, never scanned');
  const raw = JSON.parse((await zk.getData(paths.node(node?.id ?? '')))?.toString() ?? '{}') as Record<string, unknown>;
  assert.equal(raw.python_path, '/usr/bin/python3');
  assert.equal(raw.shell_type, 'sh');
  const checked = (await readyOf(zk, h3.address))[0];
  const plain = JSON.parse((await zk.getData(paths.node(checked?.id ?? '')))?.toString() ?? '{}') as Record<string, unknown>;
  assert.ok(!('python_path' in plain) && !('shell_type' in plain), 'hosts without them keep the 3.x node JSON');
  // handed out without a check at hand-out either
  const done = await waitState(zk, await submit(zk, ['unchecked']), ['fulfilled']);
  assert.equal(done.nodes[0], node?.id);
  assert.equal((await staticManager(launcher).describeHosts()).find((h) => h.name === '127.0.0.65')?.state, 'up');
});
