// Runtime static hosts over the launcher's web API (`/api/v1/static-hosts`), with token scopes:
// a real ZooKeeper, a real launcher serving its web app, and real sshds the launcher checks
// before it registers what the API adds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import { Launcher } from '@nodepool-ts/launcher';
import { connectZk, testEnv, waitFor, type TestEnv } from '../helpers/harness.js';
import { currentUser, makeClientKey, startSshd, type ClientKey, type Sshd } from '../../packages/drivers/static/test/sshd.js';
import { providerNodes, readyOf, staticYaml, submit, useNode, waitState } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
let key: ClientKey;
let h1: Sshd;
let h2: Sshd;
let env: TestEnv;
let zk: ZooKeeper;
let launcher: Launcher;
let url: string;
let hostsToken: string;
let leasesToken: string;

before(async () => {
  key = await makeClientKey();
  [h1, h2] = await Promise.all([startSshd('127.0.0.85', key), startSshd('127.0.0.86', key)]);
  env = testEnv();
  zk = await connectZk(env);
  const cfg = env.write('nodepool.yaml', staticYaml(env, {
    top: `state-dir: ${env.dir}/state`,
    labels: [{ name: 'small' }, { name: 'large' }],
    pools: [{ name: 'main', hosts: [{ sshd: h1, labels: ['small', 'large'] }] }],
  }));
  launcher = new Launcher({ configFile: cfg, hostname: 'static-web', watchIntervalMs: 100, cleanupIntervalMs: 3_600_000, webapp: { port: 0 } });
  await launcher.start();
  cleanups.push(() => launcher.stop());
  url = `${launcher.webApp?.url ?? ''}/api/v1/static-hosts`;
  const tokens = launcher.webApp?.tokens;
  assert.ok(tokens, 'the web app has its database');
  hostsToken = (await tokens.create('ops', { scopes: ['hosts'] })).token;
  leasesToken = (await tokens.create('ci')).token;
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  await zk?.close();
  env?.cleanup();
  await Promise.all([h1, h2].map((s) => s?.destroy()));
  key?.cleanup();
});

async function call(method: string, path: string, body?: unknown, token?: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const h: Record<string, string> = { ...headers };
  if (body !== undefined) h['Content-Type'] ??= 'application/json';
  if (token) h.Authorization = `Bearer ${token}`;
  const init: RequestInit = { method, headers: h };
  if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
  const r = await fetch(`${url}${path}`, init);
  const text = await r.text();
  return { status: r.status, headers: r.headers, json: text === '' ? {} : JSON.parse(text) as Record<string, unknown> };
}

interface Row { name: string; source: string; registered: number; ready: number; os: string | null; tags: string[]; labels: string[] }

test('a hosts token adds a host over HTTP, a node request gets it, GET lists its slots, DELETE removes it', async () => {
  await waitFor('configured host registered', async () => (await readyOf(zk, h1.address)).length === 1);
  // Zuul holds the configured host, so the next `large` can only come from the added one
  const first = await waitState(zk, await submit(zk, ['small']), ['fulfilled']);
  const held = await useNode(zk, first.nodes[0] ?? '');

  const body = {
    provider: 'static-provider', name: h2.address, labels: ['large'], username: currentUser(),
    'connection-port': h2.port, 'host-key': [h2.hostKey('ed25519')], 'max-parallel-jobs': 2, timeout: 3,
    os: 'linux', tags: ['ssd', 'fast'],
  };
  const add = await call('POST', '', body, hostsToken);
  assert.equal(add.status, 201, JSON.stringify(add.json));
  assert.equal(add.json.name, h2.address);
  assert.equal(add.json.pool, 'main');
  assert.equal(add.json.source, 'runtime');
  assert.equal(add.json.added_by, 'ops');
  assert.equal(add.json.max_parallel_jobs, 2);
  assert.deepEqual(add.json.host_key, [h2.hostKey('ed25519')]);
  await waitFor('runtime host registered', async () => (await readyOf(zk, h2.address)).length === 2);

  const req = await waitState(zk, await submit(zk, ['large']), ['fulfilled']);
  const got = await zk.getNode(req.nodes[0] ?? '');
  assert.equal(got?.hostname, h2.address, 'the request got a node of the host added over HTTP');
  const busy = await useNode(zk, got?.id ?? '');

  await waitFor('listing shows the slots', async () => {
    const list = await fetch(url).then((r) => r.json()) as Row[];
    const row = list.find((r) => r.name === h2.address);
    return row?.registered === 2 && row.ready === 1 ? list : null;
  });
  const list = await fetch(url).then((r) => r.json()) as Row[];
  assert.deepEqual(list.map((r) => [r.name, r.source, r.registered, r.ready]), [[h1.address, 'config', 1, 0], [h2.address, 'runtime', 2, 1]]);
  assert.deepEqual(list[1]?.tags, ['ssd', 'fast']);
  const filtered = await fetch(`${url}?tag=fast&tag=ssd&os=LINUX&provider=static-provider`).then((r) => r.json()) as Row[];
  assert.deepEqual(filtered.map((r) => r.name), [h2.address]);
  assert.deepEqual(await fetch(`${url}?os=windows`).then((r) => r.json()), []);

  const rm = await call('DELETE', `/${encodeURIComponent(h2.address)}?provider=static-provider`, undefined, hostsToken);
  assert.equal(rm.status, 200, JSON.stringify(rm.json));
  assert.equal(rm.json.name, h2.address);
  assert.equal(rm.json.source, 'runtime');
  // the free slot goes; the node in use finishes its job first, then goes too
  await waitFor('free node deregistered', async () => {
    const nodes = (await providerNodes(zk)).filter((n) => n.hostname === h2.address);
    return nodes.length === 1 && nodes[0]?.id === got?.id;
  });
  assert.equal((await zk.getNode(got?.id ?? ''))?.state, 'in-use');
  await busy.finish();
  await waitFor('busy node gone after its job', async () => (await providerNodes(zk)).every((n) => n.hostname !== h2.address));
  const after_ = await fetch(url).then((r) => r.json()) as Row[];
  assert.deepEqual(after_.map((r) => r.name), [h1.address]);
  const again = await call('DELETE', `/${encodeURIComponent(h2.address)}`, undefined, hostsToken);
  assert.equal(again.status, 404);
  assert.equal(again.json.code, 'host_not_found');
  await held.finish();
});

test('scopes, authentication, validation and conflicts', async () => {
  const good = { provider: 'static-provider', name: 'web-added.example', labels: 'small large' };

  const noToken = await call('POST', '', good);
  assert.equal(noToken.status, 401);
  assert.equal(noToken.json.code, 'missing_token');

  const leasesOnly = await call('POST', '', good, leasesToken);
  assert.equal(leasesOnly.status, 403);
  assert.equal(leasesOnly.json.code, 'insufficient_scope');
  assert.equal(leasesOnly.json.scope, 'hosts');
  assert.match(String(leasesOnly.json.message), /lacks the scope hosts/);
  assert.equal(leasesOnly.headers.get('www-authenticate'), 'Bearer error="insufficient_scope", scope="hosts"');
  const leasesDelete = await call('DELETE', '/web-added.example', undefined, leasesToken);
  assert.equal(leasesDelete.status, 403);
  assert.equal(leasesDelete.json.code, 'insufficient_scope');
  // and the other way round: a hosts-only token cannot lease
  const lease = await fetch(`${launcher.webApp?.url ?? ''}/api/v1/leases`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${hostsToken}` }, body: JSON.stringify({ labels: { small: 1 } }),
  });
  assert.equal(lease.status, 403);
  assert.equal((await lease.json() as { code: string }).code, 'insufficient_scope');
  assert.equal(lease.headers.get('www-authenticate'), 'Bearer error="insufficient_scope", scope="leases"');

  const badType = await call('POST', '', { ...good, 'connection-port': 'twenty-two' }, hostsToken);
  assert.equal(badType.status, 400);
  assert.equal(badType.json.code, 'invalid_body');
  assert.deepEqual((badType.json.issues as { path: string }[]).map((i) => i.path), ['connection-port']);
  const unknownKey = await call('POST', '', { ...good, colour: 'blue' }, hostsToken);
  assert.equal(unknownKey.status, 400);
  assert.match(String(unknownKey.json.message), /colour/);
  const badLabel = await call('POST', '', { ...good, labels: ['nope'], 'max-parallel-jobs': 0 }, hostsToken);
  assert.equal(badLabel.status, 400);
  assert.deepEqual((badLabel.json.issues as { path: string }[]).map((i) => i.path), ['labels', 'max-parallel-jobs']);
  assert.match(String(badLabel.json.message), /^labels: label "nope" is not defined/);
  const badProvider = await call('POST', '', { ...good, provider: 'nowhere' }, hostsToken);
  assert.equal(badProvider.status, 400);
  assert.deepEqual((badProvider.json.issues as { path: string }[]).map((i) => i.path), ['provider']);
  const notJson = await call('POST', '', 'provider=static-provider', hostsToken, { 'Content-Type': 'text/plain' });
  assert.equal(notJson.status, 415);
  const tooBig = await call('POST', '', { ...good, os: 'x'.repeat(20_000) }, hostsToken);
  assert.equal(tooBig.status, 413);

  const configured = await call('POST', '', { ...good, name: h1.address }, hostsToken);
  assert.equal(configured.status, 409);
  assert.equal(configured.json.code, 'host_exists');
  assert.match(String(configured.json.message), /already configured in provider "static-provider" pool "main"/);
  const add = await call('POST', '', good, hostsToken);
  assert.equal(add.status, 201, JSON.stringify(add.json));
  assert.deepEqual(add.json.labels, ['small', 'large']);
  const dup = await call('POST', '', good, hostsToken);
  assert.equal(dup.status, 409);
  assert.equal(dup.json.code, 'host_exists');
  const configuredDelete = await call('DELETE', `/${h1.address}`, undefined, hostsToken);
  assert.equal(configuredDelete.status, 404, 'hosts of nodepool.yaml are removed by editing it');
  const rm = await call('DELETE', '/web-added.example', undefined, hostsToken);
  assert.equal(rm.status, 200);
  assert.equal(rm.json.added_by, 'ops');
});
