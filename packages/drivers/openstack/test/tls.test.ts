// HTTPS with a private CA (clouds.yaml `cacert`) and without verification (`verify: false`,
// `insecure: true`), against the simulator serving HTTPS with a certificate of a test CA made by
// openssl: Keystone, pkgcloud's Nova calls and our own Nova/Glance calls all trust that CA (and
// only this provider's calls do: nothing process-wide changes); without it, or with another CA,
// calls fail naming the URL whose certificate is not trusted; a cacert that cannot be read or is
// not PEM is a config error naming the cloud, the key and the file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { loadConfig, type OpenStackProvider } from '@nodepool-ts/core/config';
import { ProviderError } from '@nodepool-ts/core/provider';
import { SIM_USERS, makeTestPki, simCloudsYaml, simTls, type TestPki } from '../../../../test/openstack-sim/index.js';
import { createOpenStackProvider, type OpenStackProviderManager } from '../src/index.js';
import { CIRROS, DEFAULT_PROVIDER, fixture, nodepoolYaml, specFor, type Fixture } from './helpers.js';

let pkiDir = '';
let pki: TestPki;
let otherCa: TestPki;

before(() => {
  pkiDir = mkdtempSync(join(tmpdir(), 'np-os-tls-'));
  pki = makeTestPki(join(pkiDir, 'ca'));
  otherCa = makeTestPki(join(pkiDir, 'other'), 'some other CA');
});

after(() => rmSync(pkiDir, { recursive: true, force: true }));

async function httpsFixture(): Promise<Fixture> {
  return fixture({ sim: { tls: simTls(pki) } });
}

/** The simulator's demo user as cloud `name`, with `settings` added (YAML lines of the cloud entry). */
function variant(f: Fixture, name: string, settings: string[]): string {
  const d = SIM_USERS.demo;
  return `  ${name}:
    auth:
      auth_url: ${f.sim.authUrl}
      username: ${d.username}
      password: ${d.password}
      project_name: ${d.project}
      user_domain_name: ${d.domain}
      project_domain_name: ${d.domain}
    region_name: ${f.sim.region}
${settings.map((s) => `    ${s}\n`).join('')}`;
}

async function manager(f: Fixture, name: string, settings: string[], log?: Logger): Promise<{ m: OpenStackProviderManager; provider: OpenStackProvider }> {
  writeFileSync(join(f.dir, 'clouds.yaml'), simCloudsYaml(f.sim, variant(f, name, settings)));
  writeFileSync(join(f.dir, 'nodepool.yaml'), nodepoolYaml(DEFAULT_PROVIDER, { cloud: name }));
  const config = await loadConfig(join(f.dir, 'nodepool.yaml'), {
    cloudsFile: join(f.dir, 'clouds.yaml'), env: { ...process.env, NODEPOOL_STATE_DIR: f.dir },
  });
  const provider = [...config.providers.values()][0];
  assert.ok(provider && provider.driver === 'openstack');
  const m = createOpenStackProvider(provider, { validateOnStart: false, pollIntervalMs: 20, apiTimeoutMs: 5000, ...(log ? { log } : {}) });
  await m.start();
  return { m, provider };
}

/** A plain HTTPS GET with Node's defaults: what the rest of the process trusts. */
function defaultGet(url: string): Promise<string> {
  return new Promise((resolve) => {
    https.get(url, (res) => { res.resume(); resolve(`HTTP ${res.statusCode ?? 0}`); })
      .on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

test('cacert (relative to clouds.yaml): Keystone, pkgcloud and our own calls trust the private CA; nothing global changes', async () => {
  const f = await httpsFixture();
  assert.match(f.sim.base, /^https:\/\//);
  mkdirSync(join(f.dir, 'tls'));
  writeFileSync(join(f.dir, 'tls', 'ca.pem'), `# the private CA\n${readFileSync(pki.ca, 'utf8')}`);
  const { m, provider } = await manager(f, 'sim-tls', ['cacert: tls/ca.pem']);
  try {
    assert.deepEqual(await m.validate(), []);
    const created = await m.createServer(specFor(f, 'small', '0000000001', { image: { kind: 'cloud', name: CIRROS, id: null } })); // ours
    assert.equal((await m.waitForServer(created.id, 10_000)).status, 'ACTIVE');
    assert.equal((await m.getQuota()).instances, 10); // pkgcloud
    const data = randomBytes(256 * 1024);
    const file = join(f.dir, 'ubuntu-0000000001.qcow2');
    writeFileSync(file, data);
    const md5 = createHash('md5').update(data).digest('hex');
    const img = await m.uploadImage({ name: 'ubuntu-1', file, format: 'qcow2', md5, metadata: { nodepool_build_id: '1', nodepool_upload_id: '1' } }); // ours, streamed
    assert.equal(img.checksum, md5);
    await m.deleteServer(created.id); // pkgcloud
    await m.waitForServerDeletion(created.id, 10_000);
    await m.deleteImage(img.id);
    assert.equal(provider.cloudConfig.raw.cacert, 'tls/ca.pem');
    // the CA is this provider's only
    assert.equal(https.globalAgent.options.ca, undefined);
    assert.equal(process.env.NODE_TLS_REJECT_UNAUTHORIZED, undefined);
    assert.match(await defaultGet(`${f.sim.base}/identity/v3`), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('without cacert, or with another CA: a fatal error naming the URL whose certificate is not trusted', async () => {
  const f = await httpsFixture();
  try {
    for (const [name, settings] of [['sim-nocacert', []], ['sim-otherca', [`cacert: ${otherCa.ca}`]]] as const) {
      const { m } = await manager(f, name, [...settings]);
      try {
        await assert.rejects(m.listServers(), (err: unknown) => {
          assert.ok(err instanceof ProviderError);
          assert.equal(err.kind, 'fatal');
          assert.match(err.message, new RegExp(`^cloud ${name}: the TLS certificate of ${f.sim.base.replace(/[.]/g, '\\.')}/identity/v3/auth/tokens is not trusted`));
          assert.match(err.message, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
          assert.match(err.message, /set cacert in clouds\.yaml/);
          assert.doesNotMatch(err.message, /secret-demo-pw/);
          return true;
        });
        assert.equal(f.sim.calls('identity'), 0, 'no request got through');
      } finally {
        await m.stop();
      }
    }
  } finally {
    await f.cleanup();
  }
});

test('verify: false and insecure: true skip the check (also for pkgcloud), with a warning', async () => {
  const f = await httpsFixture();
  try {
    for (const [name, settings] of [['sim-noverify', ['verify: false']], ['sim-insecure', ['insecure: true', `cacert: ${join(f.dir, 'none.pem')}`]]] as const) {
      const lines: string[] = [];
      const log = pino({ level: 'info' }, new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(chunk.toString()); cb(); } }));
      const { m } = await manager(f, name, [...settings], log);
      try {
        assert.deepEqual(await m.listServers(), []); // pkgcloud
        assert.equal((await m.listImages()).length, 1); // ours
        assert.equal((await m.getQuota()).cores, 20); // pkgcloud
        assert.match(lines.join(''), new RegExp(`TLS certificates of cloud ${name} are not verified`));
        if (name === 'sim-insecure') assert.match(lines.join(''), /its cacert .*none\.pem is not used/);
      } finally {
        await m.stop();
      }
    }
  } finally {
    await f.cleanup();
  }
});

test('a cacert that cannot be read or is not PEM: a config error naming the cloud, the key and the file', async () => {
  const f = await httpsFixture();
  const clouds = join(f.dir, 'clouds.yaml').replace(/[.]/g, '\\.');
  writeFileSync(join(f.dir, 'garbage.pem'), 'this is not a certificate\n');
  writeFileSync(join(f.dir, 'broken.pem'), '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n');
  try {
    const cases: [string, RegExp][] = [
      ['missing.pem', new RegExp(`cacert: cannot read ${f.dir}/missing\\.pem: ENOENT`)],
      ['garbage.pem', new RegExp(`cacert: ${f.dir}/garbage\\.pem is not a PEM CA bundle`)],
      ['broken.pem', new RegExp(`cacert: certificate 1 of ${f.dir}/broken\\.pem is not a valid PEM certificate`)],
    ];
    for (const [file, expected] of cases) {
      const { m } = await manager(f, 'sim-badca', [`cacert: ${file}`]);
      try {
        await assert.rejects(m.listServers(), (err: unknown) => {
          assert.ok(err instanceof ProviderError);
          assert.equal(err.kind, 'fatal');
          assert.match(err.message, new RegExp(`^cloud sim-badca in ${clouds}: `));
          assert.match(err.message, expected);
          return true;
        });
        assert.match((await m.validate())[0] ?? '', expected);
      } finally {
        await m.stop();
      }
    }
    assert.equal(f.sim.calls('identity'), 0, 'nothing sent');
  } finally {
    await f.cleanup();
  }
});
