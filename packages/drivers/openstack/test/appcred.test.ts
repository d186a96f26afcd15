// Keystone application credentials (clouds.yaml `auth_type: v3applicationcredential`): the token
// request's body, a server booted and deleted with such a cloud (pkgcloud's calls and our own on
// the same token and catalog), re-authentication when the token expires or is revoked, and the
// failures an operator must be able to read — a wrong secret, a credential missing from
// clouds.yaml — never showing the secret.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { loadConfig, type CloudConfig, type OpenStackProvider } from '@nodepool-ts/core/config';
import { ProviderError } from '@nodepool-ts/core/provider';
import { simCloudsYaml } from '../../../../test/openstack-sim/index.js';
import { createOpenStackProvider, keystoneAuth, type OpenStackProviderOptions } from '../src/index.js';
import { CIRROS, DEFAULT_PROVIDER, fixture, nodepoolYaml, specFor, type Fixture } from './helpers.js';

const SECRET = 'appcred-Secret-0f9e8d7c6b5a';
// Keystone's times are UTC even where they say no zone: read in another zone, they must not shift
process.env.TZ = 'America/New_York';

function cloud(raw: Record<string, unknown>, name = 'c1'): CloudConfig {
  const auth = (raw.auth ?? {}) as Record<string, string>;
  return {
    name, authUrl: auth.auth_url ?? 'http://k/v3', username: auth.username ?? null, password: auth.password ?? null,
    projectName: auth.project_name ?? null, projectId: auth.project_id ?? null, userDomainName: auth.user_domain_name ?? null,
    projectDomainName: auth.project_domain_name ?? null, regionName: null, regions: [], imageFormat: 'qcow2', raw,
    file: '/etc/openstack/clouds.yaml',
  };
}

/** The provider of `cloudName` from a clouds.yaml with the simulator's clouds plus `extra`, loaded as the daemons load it. */
async function providerFor(f: Fixture, extra: string, cloudName: string): Promise<OpenStackProvider> {
  writeFileSync(join(f.dir, 'clouds.yaml'), simCloudsYaml(f.sim, extra));
  writeFileSync(join(f.dir, 'nodepool.yaml'), nodepoolYaml(DEFAULT_PROVIDER, { cloud: cloudName }));
  const config = await loadConfig(join(f.dir, 'nodepool.yaml'), {
    cloudsFile: join(f.dir, 'clouds.yaml'), env: { ...process.env, NODEPOOL_STATE_DIR: f.dir },
  });
  const provider = [...config.providers.values()][0];
  assert.ok(provider && provider.driver === 'openstack');
  return provider;
}

function appCredCloud(f: Fixture, name: string, auth: Record<string, string>, authType = 'v3applicationcredential'): string {
  return `  ${name}:
    auth_type: ${authType}
    auth:
      auth_url: ${f.sim.authUrl}
${Object.entries(auth).map(([k, v]) => `      ${k}: ${v}`).join('\n')}
    region_name: ${f.sim.region}
`;
}

/** A logger whose every line lands in `lines`. */
function capture(): { lines: string[]; log: OpenStackProviderOptions['log'] } {
  const lines: string[] = [];
  const stream = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(chunk.toString()); cb(); } });
  return { lines, log: pino({ level: 'debug' }, stream) };
}

test('the token request: application credential by id, by name with its user, no scope; password unchanged', () => {
  const byId = keystoneAuth(cloud({ auth_type: 'v3applicationcredential', auth: { application_credential_id: 'abc123', application_credential_secret: 's3cret-x' } }));
  assert.equal(byId.method, 'application_credential');
  assert.deepEqual(byId.body, {
    auth: { identity: { methods: ['application_credential'], application_credential: { id: 'abc123', secret: 's3cret-x' } } },
  });
  assert.equal(byId.describe, 'application credential abc123');
  const byName = keystoneAuth(cloud({
    auth_type: 'applicationcredential',
    auth: { application_credential_name: 'ci', application_credential_secret: 's3cret-x', username: 'demo', user_domain_name: 'Default', project_name: 'ignored' },
  }));
  assert.deepEqual(byName.body.auth, {
    identity: {
      methods: ['application_credential'],
      application_credential: { name: 'ci', secret: 's3cret-x', user: { name: 'demo', domain: { name: 'Default' } } },
    },
  }, 'no scope: the credential carries its project');
  for (const spelling of ['v3applicationcredential', 'applicationcredential', 'v3-application-credential', 'V3ApplicationCredential']) {
    const a = keystoneAuth(cloud({ auth_type: spelling, auth: { application_credential_name: 'ci', application_credential_secret: 'x1234', user_id: 'u1' } }));
    assert.deepEqual((a.body.auth.identity as { application_credential: unknown }).application_credential, { name: 'ci', secret: 'x1234', user: { id: 'u1' } });
  }
  // unquoted numeric ids and secrets are text, as for passwords
  const numeric = keystoneAuth(cloud({ auth_type: 'v3applicationcredential', auth: { application_credential_id: 1234, application_credential_secret: 98765 } }));
  assert.deepEqual((numeric.body.auth.identity as { application_credential: unknown }).application_credential, { id: '1234', secret: '98765' });

  const pw = keystoneAuth(cloud({ auth: { username: 'demo', password: 'pw-1234', user_domain_id: 'default', project_name: 'demo', project_domain_name: 'Default' } }));
  assert.deepEqual(pw.body, {
    auth: {
      identity: { methods: ['password'], password: { user: { name: 'demo', domain: { id: 'default' }, password: 'pw-1234' } } },
      scope: { project: { name: 'demo', domain: { name: 'Default' } } },
    },
  });
  assert.equal(keystoneAuth(cloud({ auth_type: 'password', auth: { user_id: 'u1', password: 'p', project_id: 'p1' } })).describe, 'user u1');
});

test('a clouds.yaml entry that cannot authenticate: a config error naming the cloud and the file, never the secret', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ auth_type: 'v3applicationcredential', auth: { application_credential_id: 'abc123' } }, /needs auth\.application_credential_secret/],
    [{ auth_type: 'v3applicationcredential', auth: { application_credential_secret: 'hidden-secret-1' } }, /needs auth\.application_credential_id \(or auth\.application_credential_name/],
    [{ auth_type: 'v3applicationcredential', auth: { application_credential_name: 'ci', application_credential_secret: 'hidden-secret-1' } },
      /application_credential_name ci needs its user/],
    [{ auth_type: 'v3applicationcredential', auth: { application_credential_name: 'ci', application_credential_secret: 'hidden-secret-1', username: 'demo' } },
      /auth\.username demo needs its domain/],
    [{ auth_type: 'v3oidcpassword', auth: { username: 'demo', password: 'hidden-secret-1' } }, /auth_type v3oidcpassword is not supported/],
    [{ auth: { username: 'demo' } }, /auth\.password is not set/],
  ];
  for (const [raw, expected] of cases) {
    assert.throws(() => keystoneAuth(cloud(raw)), (err: Error) => {
      assert.match(err.message, /^cloud c1 in \/etc\/openstack\/clouds\.yaml: /);
      assert.match(err.message, expected);
      assert.doesNotMatch(err.message, /hidden-secret-1/);
      return true;
    });
  }
});

test('application credential by id: a server booted, listed and deleted; pkgcloud and our calls share its token', async () => {
  const f = await fixture();
  const cred = f.sim.createAppCredential('demo', 'nodepool', { secret: SECRET });
  const provider = await providerFor(f, appCredCloud(f, 'sim-appcred', {
    application_credential_id: cred.id, application_credential_secret: SECRET,
  }), 'sim-appcred');
  const m = createOpenStackProvider(provider, { validateOnStart: false, pollIntervalMs: 20 });
  await m.start();
  try {
    assert.deepEqual(await m.validate(), []);
    assert.equal(m.projectId(), f.sim.projectOf('demo'), 'scoped to the credential\'s project');
    const created = await m.createServer(specFor(f, 'small', '0000000001', { image: { kind: 'cloud', name: CIRROS, id: null } }));
    assert.equal((await m.waitForServer(created.id, 10_000)).status, 'ACTIVE');
    assert.deepEqual((await m.listServers()).map((s) => s.id), [created.id]);
    assert.equal((await m.getQuota()).instances, 10); // pkgcloud
    assert.equal((await m.listImages()).length, 1); // our Glance module
    await m.deleteServer(created.id); // pkgcloud's DELETE
    await m.waitForServerDeletion(created.id, 10_000);
    assert.equal(f.sim.calls('identity POST /v3/auth/tokens'), 1, 'one token for every client');
    const tokens = [...f.sim.tokens.values()];
    assert.equal(tokens.length, 1);
    assert.equal(tokens[0]?.appCredentialId, cred.id, 'issued for the application credential');
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('application credential by name with username and user domain (auth_type applicationcredential)', async () => {
  const f = await fixture();
  f.sim.createAppCredential('alice', 'nodepool-ci', { secret: SECRET });
  const provider = await providerFor(f, appCredCloud(f, 'sim-appcred-name', {
    application_credential_name: 'nodepool-ci', application_credential_secret: SECRET, username: 'alice', user_domain_name: 'Example',
  }, 'applicationcredential'), 'sim-appcred-name');
  const m = createOpenStackProvider(provider, { validateOnStart: false });
  await m.start();
  try {
    assert.deepEqual(await m.listAzs(), ['nova']);
    assert.equal(m.projectId(), f.sim.projectOf('alice'));
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('re-authentication with the credential: before the token expires, and after it was revoked', async () => {
  // tokens living 4 s: renewed half way through their life
  const f = await fixture({ sim: { tokenTtlMs: 4000 } });
  const cred = f.sim.createAppCredential('demo', 'nodepool', { secret: SECRET });
  const provider = await providerFor(f, appCredCloud(f, 'sim-appcred', {
    application_credential_id: cred.id, application_credential_secret: SECRET,
  }), 'sim-appcred');
  const statuses: (number | null)[] = [];
  const m = createOpenStackProvider(provider, { validateOnStart: false, onApiCall: (e) => statuses.push(e.status) });
  await m.start();
  try {
    await Promise.all([m.getQuota(), m.listImages(), m.listFlavors()]);
    assert.equal(f.sim.calls('identity POST /v3/auth/tokens'), 1);
    await new Promise((r) => setTimeout(r, 2300));
    m.invalidateQuotaCache();
    await Promise.all([m.getQuota(), m.listImages()]); // pkgcloud and our module, one new token
    assert.equal(f.sim.calls('identity POST /v3/auth/tokens'), 2, 'a new token before the old one expired');
    assert.ok(!statuses.includes(401), 'renewed in time: no call was refused');
    f.sim.tokens.clear(); // revoked (Keystone restarted with new keys)
    m.invalidateQuotaCache();
    assert.equal((await m.getQuota()).cores, 20); // pkgcloud: 401, a new token, again
    assert.equal((await m.listImages()).length, 1); // our Glance module on the new token
    assert.equal(f.sim.calls('identity POST /v3/auth/tokens'), 3);
    assert.ok([...f.sim.tokens.values()].every((t) => t.appCredentialId === cred.id));
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('a credential that expires: tokens capped at its expiry (no time zone, as Keystone writes them) renewed in time; then a clear error', async () => {
  assert.notEqual(new Date('2026-01-01T00:00:00').getTime(), Date.parse('2026-01-01T00:00:00Z'), 'this test runs in a zone other than UTC');
  const f = await fixture();
  const expiresAt = new Date(Math.ceil((Date.now() + 4000) / 1000) * 1000);
  const cred = f.sim.createAppCredential('demo', 'nodepool-short', { secret: SECRET, expiresAt });
  const provider = await providerFor(f, appCredCloud(f, 'sim-appcred', {
    application_credential_id: cred.id, application_credential_secret: SECRET,
  }), 'sim-appcred');
  const m = createOpenStackProvider(provider, { validateOnStart: false });
  await m.start();
  try {
    assert.equal((await m.listImages()).length, 1);
    assert.equal(f.sim.calls('identity POST /v3/auth/tokens'), 1);
    // the token lives until the credential expires (3-4 s): renewed half way through
    await new Promise((r) => setTimeout(r, expiresAt.getTime() - Date.now() - 1000));
    assert.equal((await m.listImages()).length, 1);
    assert.equal(f.sim.calls('identity POST /v3/auth/tokens'), 2, 'renewed before the capped expiry');
    await new Promise((r) => setTimeout(r, expiresAt.getTime() - Date.now() + 200));
    await assert.rejects(m.listImages(), (err: unknown) => {
      assert.ok(err instanceof ProviderError);
      assert.match(err.message, new RegExp(`authentication failed for application credential ${cred.id} at .*has not expired`));
      assert.doesNotMatch(err.message, new RegExp(SECRET));
      return true;
    });
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('a wrong secret: a clear error naming cloud, credential and auth URL, never the secret (messages and logs)', async () => {
  const f = await fixture();
  const cred = f.sim.createAppCredential('demo', 'nodepool', { secret: SECRET });
  const wrong = 'not-the-Secret-4b3a2918';
  const provider = await providerFor(f, appCredCloud(f, 'sim-appcred', {
    application_credential_id: cred.id, application_credential_secret: wrong,
  }), 'sim-appcred');
  const { lines, log } = capture();
  const m = createOpenStackProvider(provider, { validateOnStart: false, ...(log ? { log } : {}) });
  await m.start(); // start never fails on cloud trouble: the other providers keep serving
  try {
    await assert.rejects(m.listServers(), (err: unknown) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(err.provider, 'sim-provider');
      assert.equal(err.kind, 'fatal');
      assert.match(err.message, new RegExp(`cloud sim-appcred: authentication failed for application credential ${cred.id} at ${f.sim.authUrl.replace(/[.]/g, '\\.')} `));
      assert.match(err.message, /HTTP 401/);
      assert.match(err.message, new RegExp(`in ${join(f.dir, 'clouds.yaml').replace(/[.]/g, '\\.')}`));
      assert.doesNotMatch(err.message + String(err.stack), new RegExp(`${wrong}|${SECRET}`));
      return true;
    });
    const problems = await m.validate();
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', /authentication failed for application credential/);
    const logged = lines.join('');
    assert.match(logged, /authentication failed for application credential/);
    assert.doesNotMatch(logged, new RegExp(wrong));
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('a credential missing from clouds.yaml fails the provider\'s calls with a config error, not the start', async () => {
  const f = await fixture();
  const provider = await providerFor(f, appCredCloud(f, 'sim-appcred', { application_credential_id: 'abc' }), 'sim-appcred');
  const { lines, log } = capture();
  const m = createOpenStackProvider(provider, { validateOnStart: false, ...(log ? { log } : {}) });
  try {
    await m.start();
    const expected = new RegExp(`cloud sim-appcred in ${join(f.dir, 'clouds.yaml').replace(/[.]/g, '\\.')}: auth_type v3applicationcredential needs auth\\.application_credential_secret`);
    await assert.rejects(m.listServers(), (err: unknown) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(err.kind, 'fatal');
      assert.match(err.message, expected);
      return true;
    });
    assert.match(lines.join(''), expected, 'logged at start');
    assert.equal(f.sim.calls('identity'), 0, 'nothing sent to Keystone');
  } finally {
    await m.stop();
    await f.cleanup();
  }
});
