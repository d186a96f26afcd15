// Security of the web app: loopback by default, no mutation without a token, tokens stored only
// as digests, and no secret (cloud password, database password, token, private key) in any
// response, log line or metric.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { configureLogging } from '@nodepool-ts/core/log';
import { openWebDatabase } from '../src/web/db.js';
import { TokenStore, parseExpiry } from '../src/web/tokens.js';
import { fakeConfig, http, jsonBody, launcherWeb, testEnv, waitFor } from './web-helpers.js';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  configureLogging({ level: 'silent' });
});

test('tokens: only a SHA-256 of the secret is stored; verify, revoke, expiry; expiry parsing', async () => {
  const env = testEnv();
  const db = await openWebDatabase({ databaseUri: null, stateDir: `${env.dir}/state` });
  cleanups.push(async () => { await db.close(); env.cleanup(); });
  let now = 1_000_000;
  const store = new TokenStore(db.knex, () => now);
  const { token, info } = await store.create('ci', { expiresAt: now + 100 });
  assert.match(token, /^np_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
  const secret = token.slice(16);
  const rows = await db.knex('tokens').select('*') as Record<string, unknown>[];
  const dump = JSON.stringify(rows);
  assert.ok(!dump.includes(secret) && !dump.includes(token), 'the secret is not stored');
  assert.equal(rows[0]?.hash, (await import('node:crypto')).createHash('sha256').update(secret).digest('hex'));
  assert.deepEqual(await store.verify(token), { ok: true, token: info });
  assert.deepEqual(await store.verify(token.slice(0, -1) + (token.endsWith('a') ? 'b' : 'a')), { ok: false, reason: 'invalid' });
  assert.deepEqual(await store.verify(`np_${info.id}_${'A'.repeat(43)}`), { ok: false, reason: 'invalid' });
  assert.deepEqual(await store.verify(''), { ok: false, reason: 'invalid' });
  now += 101;
  assert.deepEqual(await store.verify(token), { ok: false, reason: 'expired' });
  now -= 101;
  await store.revoke('ci');
  assert.deepEqual(await store.verify(token), { ok: false, reason: 'revoked' });
  await assert.rejects(store.create('ci'), /already exists/);
  await assert.rejects(store.create('bad name!'), /token name/);
  assert.equal(parseExpiry('30d', 0), 30 * 86400);
  assert.equal(parseExpiry('12h', 10), 10 + 12 * 3600);
  assert.equal(parseExpiry('90', 0), 90);
  assert.equal(parseExpiry('2030-01-01T00:00:00Z', 0), Date.parse('2030-01-01T00:00:00Z') / 1000);
  assert.throws(() => parseExpiry('soon', 0), /duration/);
  assert.throws(() => parseExpiry('2000-01-01', Date.now() / 1000), /passed/);
});

test('the web app listens on 127.0.0.1 unless configured; only the lease and static-host APIs mutate, always with a token', async () => {
  const lw = await launcherWeb((env) => fakeConfig(env));
  cleanups.push(() => lw.close());
  assert.match(lw.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const paths = ['/node-list', '/image-list', '/dib-image-list', '/request-list', '/label-list', '/ready', '/metrics',
    '/dashboard', '/api/v1/status', '/api/v1/history', '/api/v1/openapi.json', '/api/v1/leases'];
  for (const p of paths) {
    for (const m of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      const r = await http(`${lw.url}${p}`, jsonBody(m, {}));
      if (p === '/api/v1/leases' && m === 'POST') assert.equal(r.status, 401, `${m} ${p}`);
      else assert.equal(r.status, 404, `${m} ${p}`);
    }
  }
  for (const m of ['PATCH', 'DELETE']) assert.equal((await http(`${lw.url}/api/v1/leases/x`, jsonBody(m, {}))).status, 401);
  // the static-host endpoints change things only with a token too
  assert.equal((await http(`${lw.url}/api/v1/static-hosts`, jsonBody('POST', {}))).status, 401);
  assert.equal((await http(`${lw.url}/api/v1/static-hosts/x`, jsonBody('DELETE', {}))).status, 401);
  for (const m of ['PUT', 'PATCH']) assert.equal((await http(`${lw.url}/api/v1/static-hosts`, jsonBody(m, {}))).status, 404);
  assert.equal((await http(`${lw.url}/api/v1/leases/x`, jsonBody('PUT', {}))).status, 404);
  const dash = await http(`${lw.url}/dashboard`);
  assert.match(dash.headers.get('content-security-policy') ?? '', /default-src 'none'/);
  assert.equal(dash.headers.get('x-frame-options'), 'DENY');
  assert.equal(dash.headers.get('x-content-type-options'), 'nosniff');
});

test('no secret in any response, log line or metric', async () => {
  const CLOUD_PW = 'Cl0ud-Pa55word-7f3a9c';
  const DB_PW = 'Db-Pa55word-91b2e4';
  const KEY_MATERIAL = 'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUtU0VDUkVUS0VZ';
  const env = testEnv();
  const logFile = `${env.dir}/launcher.log`;
  configureLogging({ level: 'trace', destination: logFile });
  const statsd = createSocket('udp4');
  const packets: string[] = [];
  statsd.on('message', (m) => packets.push(m.toString()));
  await new Promise<void>((r) => statsd.bind(0, '127.0.0.1', () => r()));
  const saved = { ...process.env };
  process.env.STATSD_HOST = '127.0.0.1';
  process.env.STATSD_PORT = String(statsd.address().port);
  process.env.OS_CLIENT_CONFIG_FILE = env.write('clouds.yaml',
    `clouds:\n  mycloud:\n    auth:\n      auth_url: https://keystone.example.org/v3\n      username: nodepool\n      password: ${CLOUD_PW}\n      project_name: np\n`);
  const keyFile = env.write('id_rsa', `-----BEGIN OPENSSH PRIVATE KEY-----\n${KEY_MATERIAL}\n-----END OPENSSH PRIVATE KEY-----\n`);
  cleanups.push(async () => {
    statsd.close();
    for (const k of ['STATSD_HOST', 'STATSD_PORT', 'OS_CLIENT_CONFIG_FILE']) {
      if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
    }
  });

  // 1. a launcher whose database password is wrong and server unreachable: leases are 503
  const broken = await launcherWeb((e) => `${fakeConfig(e, { labels: [{ name: 'fake-label', minReady: 1 }], providerExtra: '    cloud: mycloud\n' })}
private-key: ${keyFile}
database: mysql://nodepool:${DB_PW}@127.0.0.1:1/nodepool
`, { databaseRetryMs: 200 });
  cleanups.push(() => broken.close());
  const bodies: string[] = [];
  const grab = async (url: string, init?: RequestInit) => {
    const r = await http(url, init);
    bodies.push(JSON.stringify([...r.headers.entries()]), r.text);
    return r;
  };
  const leaseDown = await grab(`${broken.url}/api/v1/leases`, jsonBody('POST', { labels: { 'fake-label': 1 } }, 'np_000000000000_' + 'x'.repeat(43)));
  assert.equal(leaseDown.status, 503);
  assert.equal((leaseDown.json() as { code: string }).code, 'database_unavailable');

  // 2. a working one, used with a real token
  const lw = await launcherWeb((e) => `${fakeConfig(e, { labels: [{ name: 'fake-label', minReady: 1 }], providerExtra: '        username: zuul\n    cloud: mycloud\n' })}
private-key: ${keyFile}
`, { leaseLimits: { minTtl: 1, expiryIntervalMs: 200 } });
  cleanups.push(() => lw.close());
  const created = await lw.launcher.webApp?.tokens?.create('secret-test', {});
  assert.ok(created);
  const tok = created.token;
  const post = await grab(`${lw.url}/api/v1/leases`, jsonBody('POST', { labels: { 'fake-label': 1 }, ttl: 60, wait: 20 }, tok));
  assert.equal(post.status, 201);
  const id = (post.json() as { id: string }).id;
  await grab(`${lw.url}/api/v1/leases/${id}`, jsonBody('PATCH', { ttl: 120 }, tok));
  await grab(`${lw.url}/api/v1/leases/${id}`, jsonBody('PATCH', { ttl: 120 }, tok + 'x'));
  await grab(`${lw.url}/api/v1/leases`, jsonBody('POST', { labels: { nope: 1 } }, tok));
  for (const base of [broken.url, lw.url]) {
    for (const p of ['/node-list', '/node-list.json', '/request-list.json', '/label-list', '/image-list', '/dib-image-list.json',
      '/ready', '/metrics', '/api/v1/status', '/api/v1/leases', `/api/v1/leases/${id}`, '/api/v1/openapi.json', '/api/v1/history',
      '/dashboard', '/dashboard/dashboard.js', '/nope']) {
      await grab(`${base}${p}`);
    }
  }
  // one SSE snapshot
  const ac = new AbortController();
  const sse = await fetch(`${lw.url}/api/v1/events`, { signal: ac.signal });
  const reader = sse.body?.getReader();
  const chunk = await reader?.read();
  bodies.push(new TextDecoder().decode(chunk?.value));
  ac.abort();
  await grab(`${lw.url}/api/v1/leases/${id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${tok}` } });
  await waitFor('statsd traffic', () => packets.length > 0, 10_000, 100);
  await broken.close();
  await lw.close();

  const logs = readFileSync(logFile, 'utf8');
  assert.ok(logs.includes('"name":"nodepool.LeaseManager"'), 'the log was captured');
  assert.match(logs, /"lease":"[0-9a-f-]{36}".*"request":"200-\d{10}"/, 'lease lines carry lease and request ids');
  const secret = tok.slice(16);
  const everything: [string, string][] = [['response', bodies.join('\n')], ['log', logs], ['statsd', packets.join('\n')]];
  for (const [where, text] of everything) {
    for (const [what, s] of [['cloud password', CLOUD_PW], ['database password', DB_PW], ['token', tok], ['token secret', secret], ['private key', KEY_MATERIAL]] as const) {
      assert.ok(!text.includes(s), `${what} leaked into a ${where}`);
    }
  }
});
