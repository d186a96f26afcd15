// Keystone v3 through pkgcloud's identity: domains by name and by id, clouds.yaml found through
// OS_CLIENT_CONFIG_FILE, region selection, one token for concurrent calls, re-authentication
// after revocation, and the failures an operator must be able to read: wrong credentials, a
// cloud that is down — never showing the password.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '@nodepool-ts/core/config';
import { ProviderError } from '@nodepool-ts/core/provider';
import { clientOptions, createOpenStackProvider, keystoneBase } from '../src/index.js';
import { DEFAULT_PROVIDER, fixture, nodepoolYaml, startManager } from './helpers.js';

test('keystoneBase strips the version pkgcloud appends itself', () => {
  assert.equal(keystoneBase('http://k:5000/v3'), 'http://k:5000');
  assert.equal(keystoneBase('http://k:5000/v3/'), 'http://k:5000');
  assert.equal(keystoneBase('http://k/identity/v3'), 'http://k/identity');
  assert.equal(keystoneBase('http://k:5000'), 'http://k:5000');
  assert.equal(keystoneBase('http://k:5000/v2.0'), 'http://k:5000');
});

test('password auth with user and project domain by name, scoped to the project', async () => {
  const f = await fixture();
  const m = await startManager(f);
  try {
    const q = await m.getQuota();
    assert.equal(q.instances, 10);
    assert.equal(m.projectId(), f.sim.projectOf('demo'));
    assert.equal(f.sim.calls('identity POST /v3/auth/tokens'), 1);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('a second domain given by id, clouds.yaml from OS_CLIENT_CONFIG_FILE, no region: the catalog\'s', async () => {
  const base = await fixture();
  const domainId = [...base.sim.state.domains.values()].find((d) => d.name === 'Example')?.id ?? '';
  const extra = `  by-id:
    auth:
      auth_url: ${base.sim.authUrl}/
      username: alice
      password: wonderland-pw
      project_name: ci
      user_domain_id: ${domainId}
      project_domain_id: ${domainId}
`;
  const dir = base.dir;
  writeFileSync(join(dir, 'clouds.yaml'), `${(await import('../../../../test/openstack-sim/index.js')).simCloudsYaml(base.sim, extra)}`);
  writeFileSync(join(dir, 'nodepool.yaml'), nodepoolYaml(DEFAULT_PROVIDER, { cloud: 'by-id' }));
  // clouds.yaml found the os-client-config way: $OS_CLIENT_CONFIG_FILE
  const config = await loadConfig(join(dir, 'nodepool.yaml'), {
    env: { ...process.env, OS_CLIENT_CONFIG_FILE: join(dir, 'clouds.yaml'), NODEPOOL_STATE_DIR: dir },
  });
  const provider = [...config.providers.values()][0];
  assert.ok(provider && provider.driver === 'openstack');
  const opts = clientOptions(provider.cloudConfig, null);
  assert.equal(opts.domainId, domainId);
  assert.equal(opts.projectDomainId, domainId);
  assert.equal(opts.authUrl, `${base.sim.base}/identity`);
  const m = createOpenStackProvider(provider, { validateOnStart: false });
  await m.start();
  try {
    assert.deepEqual(await m.listAzs(), ['nova']);
    assert.equal(m.projectId(), base.sim.projectOf('alice'));
  } finally {
    await m.stop();
    await base.cleanup();
  }
});

test('concurrent first calls share one token; a revoked token is replaced transparently', async () => {
  const f = await fixture();
  const m = await startManager(f);
  try {
    await Promise.all([m.listFlavors(), m.listAzs(), m.getQuota(), m.listImages(), m.listServers()]);
    assert.equal(f.sim.calls('identity POST /v3/auth/tokens'), 1);
    f.sim.tokens.clear(); // Keystone restarted / token revoked
    m.invalidateQuotaCache();
    assert.equal((await m.getQuota()).cores, 20); // pkgcloud call
    assert.equal((await m.listImages()).length, 1); // own Glance module
    assert.equal(f.sim.calls('identity POST /v3/auth/tokens'), 2);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('wrong credentials: a clear error naming provider and cloud, never the password', async () => {
  const f = await fixture();
  const provider = { ...f.provider, cloudConfig: { ...f.provider.cloudConfig, password: 'hunter2-not-it' } };
  const m = createOpenStackProvider(provider, { validateOnStart: false });
  await m.start(); // start never fails on cloud trouble: the other providers keep serving
  try {
    await assert.rejects(m.listServers(), (err: unknown) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(err.provider, 'sim-provider');
      assert.equal(err.kind, 'fatal');
      assert.match(err.message, /cloud sim: authentication failed/);
      assert.match(err.message, /HTTP 401/);
      assert.doesNotMatch(err.message + String(err.stack), /hunter2-not-it/);
      return true;
    });
    const problems = await m.validate();
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', /authentication failed/);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('a cloud that is down: retryable "unreachable" errors, and it recovers when the cloud is back', async () => {
  const f = await fixture();
  const m = await startManager(f, { apiTimeoutMs: 2000 });
  try {
    f.sim.setFaults({ down: true });
    await assert.rejects(m.listServers(), (err: unknown) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(err.kind, 'retryable');
      assert.match(err.message, /cloud sim is unreachable/);
      return true;
    });
    f.sim.setFaults({ down: false });
    assert.deepEqual(await m.listServers(), []);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('a refused port (nothing listening) is reported the same way', async () => {
  const f = await fixture();
  await f.sim.stop();
  const m = await startManager(f, { apiTimeoutMs: 2000 });
  try {
    await assert.rejects(m.getQuota(), /cloud sim is unreachable \(identity POST .*ECONNREFUSED\)/);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('a cloud without auth_url fails its calls, not the start', async () => {
  const f = await fixture();
  const provider = { ...f.provider, cloudConfig: { ...f.provider.cloudConfig, authUrl: null } };
  const m = createOpenStackProvider(provider, { validateOnStart: false });
  try {
    await m.start();
    await assert.rejects(m.listServers(), (err: unknown) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(err.provider, 'sim-provider');
      assert.match(err.message, /cloud sim has no auth\.auth_url/);
      return true;
    });
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('rate: API calls of all callers are spaced by `rate` seconds', async () => {
  const f = await fixture({ provider: DEFAULT_PROVIDER.replace('rate: 0.0001', 'rate: 0.1') });
  const m = await startManager(f);
  try {
    await m.listFlavors(); // token + flavors
    const t0 = Date.now();
    await Promise.all([m.listAzs(), m.getQuota(), m.listImages(), m.listServers()]);
    const elapsed = Date.now() - t0;
    // four calls (plus network listing for listServers): at least 3 gaps of 100 ms after the first
    assert.ok(elapsed >= 380, `calls took ${elapsed} ms, expected spacing of 100 ms`);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});
