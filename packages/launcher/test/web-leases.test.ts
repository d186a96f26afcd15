// The lease API end to end against a real launcher with the fake provider and real ZooKeeper:
// tokens (missing/invalid/revoked/expired), body validation, rate limit, nodes per token, the
// lifecycle (request → in-use and locked → extend → return → used → deleted), expiry,
// cancellation, failure, and recovery of held leases across a launcher restart.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import { Launcher, type TokenStore, type WebAppOptions } from '@nodepool-ts/launcher';
import {
  connectZk, fakeConfig, http, jsonBody, launcherWeb, testEnv, waitFor, type LauncherWeb, type TestEnv,
} from './web-helpers.js';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

const FAST: WebAppOptions = {
  leaseLimits: { minTtl: 1, expiryIntervalMs: 200, rateBurst: 1000, ratePerMinute: 60_000, maxNodesPerToken: 6, maxNodesPerLease: 4, maxTtl: 3600, maxWait: 60 },
};

function yaml(env: TestEnv, extra = ''): string {
  return fakeConfig(env, {
    labels: [{ name: 'fake-label' }, { name: 'other-label' }],
    providerExtra: `        username: zuul\n${extra}`,
  });
}

async function start(opts: WebAppOptions = FAST, extra = ''): Promise<LauncherWeb> {
  const lw = await launcherWeb((env) => yaml(env, extra), opts);
  cleanups.push(() => lw.close());
  return lw;
}

function tokens(lw: LauncherWeb): TokenStore {
  const t = lw.launcher.webApp?.tokens;
  assert.ok(t, 'the web app has its database');
  return t;
}

async function token(lw: LauncherWeb, name: string, opts: { expiresAt?: number; maxNodes?: number } = {}): Promise<string> {
  return (await tokens(lw).create(name, opts)).token;
}

interface LeaseJson {
  id: string;
  state: string;
  request_id: string | null;
  nodes: { id: string; state: string | null; interface_ip: string | null; username: string | null; connection_port: number | null; host_keys: string[]; label: string | null }[];
  expires_in: number | null;
  token: string;
  ttl: number;
  error: string | null;
}

async function lease(lw: LauncherWeb, id: string): Promise<LeaseJson> {
  const r = await http(`${lw.url}/api/v1/leases/${id}`);
  assert.equal(r.status, 200);
  return r.json() as LeaseJson;
}

function code(r: { json: () => unknown }): string {
  return (r.json() as { code: string }).code;
}

async function nodeState(zk: ZooKeeper, id: string): Promise<string | null> {
  return (await zk.getNode(id))?.state ?? null;
}

test('mutations need a valid token: missing/malformed/unknown → 401, revoked/expired → 403; reads are open', async () => {
  const lw = await start();
  const url = `${lw.url}/api/v1/leases`;
  const body = { labels: { 'fake-label': 1 } };
  const missing = await http(url, jsonBody('POST', body));
  assert.equal(missing.status, 401);
  assert.equal(code(missing), 'missing_token');
  assert.equal(missing.headers.get('www-authenticate'), 'Bearer');
  const basic = await http(url, jsonBody('POST', body, undefined, { Authorization: 'Basic dXNlcjpwdw==' }));
  assert.equal(basic.status, 401);
  assert.equal(code(basic), 'invalid_token');
  const garbage = await http(url, jsonBody('POST', body, 'not-a-token'));
  assert.equal(code(garbage), 'invalid_token');
  const good = await token(lw, 'alice');
  const forged = good.slice(0, -4) + (good.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  const wrong = await http(url, jsonBody('POST', body, forged));
  assert.equal(wrong.status, 401);
  assert.equal(code(wrong), 'invalid_token');
  const unknownId = await http(url, jsonBody('POST', body, good.replace(/^np_[0-9a-f]{12}/, 'np_000000000000')));
  assert.equal(unknownId.status, 401);

  const revoked = await token(lw, 'bob');
  await tokens(lw).revoke('bob');
  const r = await http(url, jsonBody('POST', body, revoked));
  assert.equal(r.status, 403);
  assert.equal(code(r), 'token_revoked');
  const expired = await token(lw, 'carol', { expiresAt: Date.now() / 1000 - 1 });
  const e = await http(url, jsonBody('POST', body, expired));
  assert.equal(e.status, 403);
  assert.equal(code(e), 'token_expired');
  // X-Auth-Token works too (vmpooler's header)
  const alt = await http(`${url}/nope`, { method: 'DELETE', headers: { 'X-Auth-Token': good } });
  assert.equal(alt.status, 404);
  assert.equal(code(alt), 'lease_not_found');
  for (const m of ['PATCH', 'DELETE']) {
    const x = await http(`${url}/nope`, { method: m });
    assert.equal(x.status, 401, m);
  }
  assert.equal((await http(url)).status, 200);
  assert.equal((await http(`${url}/nope`)).status, 404);
});

test('bodies are validated with clear 4xx errors', async () => {
  const lw = await start();
  const t = await token(lw, 'val');
  const url = `${lw.url}/api/v1/leases`;
  const cases: [unknown, string, RegExp][] = [
    [{ labels: { 'no-such-label': 1 } }, 'unknown_label', /no launcher offers label no-such-label/],
    [{ labels: {} }, 'invalid_body', /labels: ask for at least one node/],
    [{ labels: { 'fake-label': 0 } }, 'invalid_body', /labels\.fake-label/],
    [{ labels: { 'fake-label': 5 } }, 'invalid_body', /labels\.fake-label/],
    [{ labels: { 'fake-label': 3, 'other-label': 2 } }, 'invalid_body', /at most 4 nodes per lease/],
    [{ labels: { 'fake-label': 1.5 } }, 'invalid_body', /labels\.fake-label/],
    [{ labels: { 'fake-label': 1 }, ttl: 0 }, 'invalid_body', /^ttl: /],
    [{ labels: { 'fake-label': 1 }, ttl: 3601 }, 'invalid_body', /^ttl: /],
    [{ labels: { 'fake-label': 1 }, wait: 61 }, 'invalid_body', /^wait: /],
    [{ labels: { 'fake-label': 1 }, admin: true }, 'invalid_body', /admin/],
    [{ labels: ['fake-label'] }, 'invalid_body', /^labels: /],
    [{}, 'invalid_body', /^labels: /],
    ['[1, 2', 'invalid_body', /not valid JSON/],
  ];
  for (const [body, want, msg] of cases) {
    const r = await http(url, jsonBody('POST', body, t));
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(code(r), want, JSON.stringify(body));
    assert.match((r.json() as { message: string }).message, msg, JSON.stringify(body));
  }
  const plain = await http(url, { method: 'POST', headers: { 'Content-Type': 'text/plain', Authorization: `Bearer ${t}` }, body: 'hello' });
  assert.equal(plain.status, 415);
  assert.equal(code(plain), 'unsupported_media_type');
  const big = await http(url, jsonBody('POST', { labels: { 'fake-label': 1 }, comment: 'x'.repeat(20_000) }, t));
  assert.equal(big.status, 413);
  assert.equal(code(big), 'body_too_large');
  const ext = await http(`${url}/x`, jsonBody('PATCH', { ttl: -5 }, t));
  assert.equal(ext.status, 400);
  // nothing was created by any of these
  assert.deepEqual((await http(url)).json(), []);
});

test('each token is rate limited on its own (429 with Retry-After)', async () => {
  const lw = await start({ leaseLimits: { ...FAST.leaseLimits, rateBurst: 3, ratePerMinute: 1 } });
  const a = await token(lw, 'busy');
  const b = await token(lw, 'calm');
  const hit = (t: string) => http(`${lw.url}/api/v1/leases/none`, { method: 'DELETE', headers: { Authorization: `Bearer ${t}` } });
  for (let i = 0; i < 3; i++) assert.equal((await hit(a)).status, 404);
  const limited = await hit(a);
  assert.equal(limited.status, 429);
  assert.equal(code(limited), 'rate_limited');
  assert.ok(Number(limited.headers.get('retry-after')) >= 1);
  assert.equal((await hit(b)).status, 404, 'another token is not affected');
  // reads are not limited
  for (let i = 0; i < 5; i++) assert.equal((await http(`${lw.url}/api/v1/leases`)).status, 200);
});

test('a token holds at most its number of nodes (default or per token)', async () => {
  const lw = await start({ leaseLimits: { ...FAST.leaseLimits, maxNodesPerToken: 2 } });
  const t = await token(lw, 'greedy');
  const url = `${lw.url}/api/v1/leases`;
  const first = await http(url, jsonBody('POST', { labels: { 'fake-label': 2 }, wait: 20 }, t));
  assert.equal(first.status, 201);
  const more = await http(url, jsonBody('POST', { labels: { 'fake-label': 1 } }, t));
  assert.equal(more.status, 403);
  assert.equal(code(more), 'max_nodes_exceeded');
  assert.deepEqual({ ...(more.json() as object), message: '' }, { code: 'max_nodes_exceeded', message: '', limit: 2, held: 2, requested: 1 });
  const id = (first.json() as LeaseJson).id;
  assert.equal((await http(`${url}/${id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${t}` } })).status, 200);
  const again = await http(url, jsonBody('POST', { labels: { 'fake-label': 1 }, wait: 20 }, t));
  assert.equal(again.status, 201);
  const small = await token(lw, 'small', { maxNodes: 1 });
  const two = await http(url, jsonBody('POST', { labels: { 'fake-label': 2 } }, small));
  assert.equal(two.status, 403);
  assert.equal((two.json() as { limit: number }).limit, 1);
});

test('lifecycle: a real node request, nodes in-use and locked, extend, return → used → deleted', async () => {
  const lw = await start();
  const t = await token(lw, 'dev');
  const url = `${lw.url}/api/v1/leases`;
  const r = await http(url, jsonBody('POST', { labels: { 'fake-label': 1, 'other-label': 1 }, ttl: 600, wait: 30, comment: 'debugging' }, t));
  assert.equal(r.status, 201, r.text);
  const l = r.json() as LeaseJson;
  assert.equal(r.headers.get('location'), `/api/v1/leases/${l.id}`);
  assert.equal(l.state, 'active');
  assert.equal(l.token, 'dev');
  assert.equal(l.nodes.length, 2);
  assert.deepEqual(l.nodes.map((n) => n.label).sort(), ['fake-label', 'other-label']);
  for (const n of l.nodes) {
    assert.ok(n.interface_ip, 'an address to connect to');
    assert.equal(n.username, 'zuul');
    assert.equal(n.connection_port, 22);
    assert.equal(n.state, 'in-use');
    assert.ok(n.host_keys.length > 0);
  }
  assert.ok(l.expires_in !== null && l.expires_in > 590 && l.expires_in <= 600);
  // exactly like Zuul: the request is gone, the nodes are allocated to it, in-use and locked
  assert.ok(l.request_id);
  assert.equal(await lw.zk.getNodeRequest(l.request_id), null);
  for (const n of l.nodes) {
    const node = await lw.zk.getNode(n.id);
    assert.equal(node?.state, 'in-use');
    assert.equal(node?.allocated_to, l.request_id);
    assert.equal(await lw.zk.isNodeLocked(n.id), true);
  }
  // the launcher does not reap them (locked), even after a cleanup pass
  await lw.launcher.runCleanup();
  assert.equal(await nodeState(lw.zk, l.nodes[0]?.id ?? ''), 'in-use');

  const ext = await http(`${url}/${l.id}`, jsonBody('PATCH', { ttl: 1200 }, t));
  assert.equal(ext.status, 200);
  const extended = ext.json() as LeaseJson;
  assert.ok(extended.expires_in !== null && extended.expires_in > 1190);
  assert.equal(extended.ttl, 1200);

  const other = await token(lw, 'someone-else');
  const foreign = await http(`${url}/${l.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${other}` } });
  assert.equal(foreign.status, 403);
  assert.equal(code(foreign), 'forbidden');

  const del = await http(`${url}/${l.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${t}` } });
  assert.equal(del.status, 200);
  assert.equal((del.json() as LeaseJson).state, 'returned');
  for (const n of l.nodes) {
    await waitFor(`node ${n.id} deleted`, async () => (await lw.zk.getNode(n.id)) === null, 20_000, 100);
  }
  const after = await lease(lw, l.id);
  assert.equal(after.state, 'returned');
  assert.equal(after.expires_in, null);
  const twice = await http(`${url}/${l.id}`, jsonBody('PATCH', { ttl: 60 }, t));
  assert.equal(twice.status, 409);
  assert.equal(code(twice), 'lease_conflict');
});

test('without wait a lease is 202 pending, then active; listing by state', async () => {
  const lw = await start(FAST, '    faults:\n      boot-delay: 1\n');
  const t = await token(lw, 'poller');
  const r = await http(`${lw.url}/api/v1/leases`, jsonBody('POST', { labels: { 'fake-label': 1 } }, t));
  assert.equal(r.status, 202);
  const l = r.json() as LeaseJson;
  assert.equal(l.state, 'pending');
  assert.equal(l.nodes.length, 0);
  const pending = await http(`${lw.url}/api/v1/leases?state=pending`);
  assert.deepEqual((pending.json() as LeaseJson[]).map((x) => x.id), [l.id]);
  const active = await waitFor('lease active', async () => {
    const x = await lease(lw, l.id);
    return x.state === 'active' ? x : null;
  }, 20_000, 100);
  assert.equal(active.nodes.length, 1);
  assert.equal((await http(`${lw.url}/api/v1/leases?state=bogus`)).status, 400);
});

test('an expired lease is returned by the launcher: nodes used, then deleted', async () => {
  const lw = await start();
  const t = await token(lw, 'short');
  const r = await http(`${lw.url}/api/v1/leases`, jsonBody('POST', { labels: { 'fake-label': 1 }, ttl: 1, wait: 20 }, t));
  assert.equal(r.status, 201);
  const l = r.json() as LeaseJson;
  const done = await waitFor('lease expired', async () => {
    const x = await lease(lw, l.id);
    return x.state === 'expired' ? x : null;
  }, 20_000, 100);
  assert.equal(done.expires_in, null);
  await waitFor('node deleted', async () => (await lw.zk.getNode(l.nodes[0]?.id ?? '')) === null, 20_000, 100);
});

test('DELETE of a pending lease cancels its request; a request nobody can serve fails the lease', async () => {
  const lw = await start(FAST, '    faults:\n      boot-delay: 3\n');
  const t = await token(lw, 'impatient');
  const r = await http(`${lw.url}/api/v1/leases`, jsonBody('POST', { labels: { 'fake-label': 1 } }, t));
  assert.equal(r.status, 202);
  const l = r.json() as LeaseJson;
  assert.ok(l.request_id);
  const del = await http(`${lw.url}/api/v1/leases/${l.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${t}` } });
  assert.equal(del.status, 200);
  assert.equal((del.json() as LeaseJson).state, 'cancelled');
  assert.equal(await lw.zk.getNodeRequest(l.request_id), null);
  // whatever the launcher was building for it is not left allocated to the vanished request
  await waitFor('no node allocated to the cancelled request', async () => {
    const nodes = await lw.zk.getNodes();
    return nodes.every((n) => n.allocated_to !== l.request_id && n.state !== 'in-use');
  }, 20_000, 200);
  assert.equal((await lease(lw, l.id)).state, 'cancelled');

  const lw2 = await launcherWeb((env) => yaml(env).replace('max-servers: 96', 'max-servers: 0'), FAST);
  cleanups.push(() => lw2.close());
  const t2 = await tokens(lw2).create('unlucky', {});
  const f = await http(`${lw2.url}/api/v1/leases`, jsonBody('POST', { labels: { 'fake-label': 1 }, wait: 20 }, t2.token));
  assert.equal(f.status, 503);
  const body = f.json() as { code: string; message: string; lease: LeaseJson };
  assert.equal(body.code, 'lease_failed');
  assert.match(body.message, /failed/);
  assert.equal(body.lease.state, 'failed');
});

test('a graceful restart keeps held leases: nodes on hold meanwhile, re-locked and in-use after', async () => {
  const env = testEnv();
  const config = env.write('nodepool.yaml', yaml(env));
  const zk = await connectZk(env);
  const mk = () => new Launcher({ configFile: config, hostname: 'restart-host', watchIntervalMs: 0, webapp: { port: 0, ...FAST } });
  const a = mk();
  await a.start();
  cleanups.push(async () => { await a.stop(); });
  const tk = await a.webApp?.tokens?.create('survivor', {});
  assert.ok(tk);
  const r = await http(`${a.webApp?.url}/api/v1/leases`, jsonBody('POST', { labels: { 'fake-label': 2 }, ttl: 600, wait: 20 }, tk.token));
  assert.equal(r.status, 201);
  const l = r.json() as LeaseJson;
  await a.stop();
  for (const n of l.nodes) {
    const node = await zk.getNode(n.id);
    assert.equal(node?.state, 'hold');
    assert.equal(node?.comment, `nodepool-ts lease ${l.id}`);
    assert.ok((node?.hold_expiration ?? 0) > 590);
    assert.equal(await zk.isNodeLocked(n.id), false);
  }
  const b = mk();
  await b.start();
  cleanups.push(async () => { await b.stop(); await zk.close(); env.cleanup(); });
  await b.webApp?.leases?.recovered();
  for (const n of l.nodes) {
    const node = await zk.getNode(n.id);
    assert.equal(node?.state, 'in-use');
    assert.equal(node?.comment, null);
    assert.equal(await zk.isNodeLocked(n.id), true);
  }
  const got = await http(`${b.webApp?.url}/api/v1/leases/${l.id}`);
  assert.equal((got.json() as LeaseJson).state, 'active');
  const del = await http(`${b.webApp?.url}/api/v1/leases/${l.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${tk.token}` } });
  assert.equal((del.json() as LeaseJson).state, 'returned');
  for (const n of l.nodes) await waitFor(`node ${n.id} deleted`, async () => (await zk.getNode(n.id)) === null, 20_000, 100);
});

test('DELETE through another launcher asks the owner (202 releasing); the owner returns the nodes', async () => {
  const env = testEnv();
  const config = env.write('nodepool.yaml', yaml(env));
  const zk = await connectZk(env);
  const a = new Launcher({ configFile: config, hostname: 'owner', watchIntervalMs: 0, webapp: { port: 0, ...FAST } });
  const b = new Launcher({ configFile: config, hostname: 'other', watchIntervalMs: 0, webapp: { port: 0, ...FAST } });
  await a.start();
  await b.start();
  cleanups.push(async () => { await b.stop(); await a.stop(); await zk.close(); env.cleanup(); });
  const tk = await a.webApp?.tokens?.create('shared', {});
  assert.ok(tk);
  const r = await http(`${a.webApp?.url}/api/v1/leases`, jsonBody('POST', { labels: { 'fake-label': 1 }, wait: 20 }, tk.token));
  assert.equal(r.status, 201);
  const l = r.json() as LeaseJson;
  const viaB = await http(`${b.webApp?.url}/api/v1/leases/${l.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${tk.token}` } });
  assert.equal(viaB.status, 202);
  assert.equal((viaB.json() as LeaseJson).state, 'releasing');
  await waitFor('returned by its owner', async () => (await lease({ url: b.webApp?.url ?? '' } as LauncherWeb, l.id)).state === 'returned', 10_000, 100);
  await waitFor('node deleted', async () => (await zk.getNode(l.nodes[0]?.id ?? '')) === null, 20_000, 100);
});

test('kill -9 of the lease holder: a restarted launcher re-locks the nodes as its old session dies', async () => {
  const { spawn } = await import('node:child_process');
  const { createServer } = await import('node:net');
  const { hostname } = await import('node:os');
  const { openTokenStore } = await import('@nodepool-ts/launcher');
  const { loadConfig } = await import('@nodepool-ts/core/config');
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const env = testEnv();
  const config = env.write('nodepool.yaml', `${yaml(env)}\nwebapp:\n  port: ${port}\n  listen_address: 127.0.0.1\n`);
  const zk = await connectZk(env);
  const store = await openTokenStore(await loadConfig(config));
  const tk = await store.tokens.create('crash', {});
  await store.close();
  const { fileURLToPath } = await import('node:url');
  const bin = fileURLToPath(new URL('../bin/nodepool-launcher.js', import.meta.url));
  const child = spawn(process.execPath, [bin, '-f', '-c', config, '-p', `${env.dir}/pid`], {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODEPOOL_LOG_LEVEL: 'warn' },
  });
  let restarted: Launcher | null = null;
  cleanups.push(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await restarted?.stop();
    await zk.close();
    env.cleanup();
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor('child launcher serving', async () => (await http(`${url}/ready`).catch(() => null))?.status === 200, 30_000, 200);
  const r = await http(`${url}/api/v1/leases`, jsonBody('POST', { labels: { 'fake-label': 1 }, ttl: 600, wait: 30 }, tk.token));
  assert.equal(r.status, 201, r.text);
  const l = r.json() as LeaseJson;
  const nodeId = l.nodes[0]?.id ?? '';
  assert.equal(await zk.isNodeLocked(nodeId), true);
  child.kill('SIGKILL');
  await new Promise((res) => child.once('exit', res));
  // its ZooKeeper session (and node lock) lives on until the server expires it
  assert.equal(await zk.isNodeLocked(nodeId), true);
  restarted = new Launcher({ configFile: config, hostname: hostname(), watchIntervalMs: 0, webapp: { port: 0, ...FAST } });
  await restarted.start();
  await restarted.webApp?.leases?.recovered();
  const node = await zk.getNode(nodeId);
  assert.equal(node?.state, 'in-use', 'the node was not reaped');
  assert.equal(await zk.isNodeLocked(nodeId), true, 'locked by the restarted launcher');
  assert.deepEqual(restarted.webApp?.leases?.heldLeaseIds(), [l.id]);
  const del = await http(`${restarted.webApp?.url}/api/v1/leases/${l.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${tk.token}` } });
  assert.equal((del.json() as LeaseJson).state, 'returned');
  // given back: used (the DeletedNodeWorker deletes it next; other tests follow that part)
  await waitFor('node used or gone', async () => (await nodeState(zk, nodeId)) !== 'in-use', 10_000, 100);
});

test('after a ZooKeeper session expiry the holder takes its node locks again', async () => {
  const { expireSession } = await import('../../core/test/zk-helpers.js');
  const lw = await start();
  const t = await token(lw, 'session');
  const r = await http(`${lw.url}/api/v1/leases`, jsonBody('POST', { labels: { 'fake-label': 1 }, ttl: 600, wait: 20 }, t));
  assert.equal(r.status, 201);
  const l = r.json() as LeaseJson;
  const nodeId = l.nodes[0]?.id ?? '';
  await expireSession(lw.launcher.zk);
  const settled = await waitFor('lease settled after the session loss', async () => {
    const x = await lease(lw, l.id);
    if (x.state === 'lost') return x;
    const locked = await lw.zk.isNodeLocked(nodeId).catch(() => false);
    return x.state === 'active' && locked && lw.launcher.webApp?.leases?.heldLeaseIds().includes(l.id) ? x : null;
  }, 40_000, 200);
  if (settled.state === 'active') {
    assert.equal(await nodeState(lw.zk, nodeId), 'in-use');
    const del = await http(`${lw.url}/api/v1/leases/${l.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${t}` } });
    assert.equal((del.json() as LeaseJson).state, 'returned');
  } else {
    assert.match(settled.error ?? '', /ZooKeeper session/);
  }
  // either way nothing stays behind in-use
  await waitFor('node gone or free', async () => (await nodeState(lw.zk, nodeId)) !== 'in-use', 20_000, 100);
});
