// Integration with a real OpenStack: Keystone, Glance, Placement and Nova (fake compute driver)
// from Debian's archive, started by scripts/openstack-real.sh (Neutron stood in for by the
// simulator). The driver, the launcher and the builder work against it exactly as against a
// production cloud, with password auth and with application credentials made by the real
// `openstack` CLI. Skipped when the packages are not installed (scripts/install-deps.sh
// openstack). NODEPOOL_TEST_OPENSTACK_REAL_DIR reuses a stack already started there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig, type OpenStackProvider } from '@nodepool-ts/core/config';
import { nodepoolServerMetadata, type ServerSpec } from '@nodepool-ts/core/provider';
import { Builder } from '@nodepool-ts/builder';
import { Launcher } from '@nodepool-ts/launcher';
import { ProviderError } from '@nodepool-ts/core/provider';
import { createOpenStackProvider, type ApiCallEvent, type OpenStackProviderManager } from '@nodepool-ts/driver-openstack';
import { connectZk, testEnv, waitFor } from '../helpers/harness.js';
import { release, submit, waitDone } from './helpers.js';

const ROOT = resolve(import.meta.dirname, '../..');
const installed = existsSync('/usr/lib/python3/dist-packages/nova') && existsSync('/usr/lib/rabbitmq/bin/rabbitmq-server')
  && existsSync('/usr/lib/python3/dist-packages/keystone') && existsSync('/usr/lib/python3/dist-packages/glance');
const skip = !installed && 'OpenStack packages not installed (scripts/install-deps.sh openstack)';

process.env.NODEPOOL_OPENSTACK_POLL_INTERVAL = '0.5';
let dir = process.env.NODEPOOL_TEST_OPENSTACK_REAL_DIR ?? '';
let started = false;

before(() => {
  if (skip) return;
  if (!dir) {
    dir = mkdtempSync(join(tmpdir(), 'np-osreal-'));
    started = true;
  }
  const r = spawnSync('bash', [join(ROOT, 'scripts/openstack-real.sh'), 'start', dir], { encoding: 'utf8', timeout: 600_000 });
  assert.equal(r.status, 0, `openstack-real.sh start failed:\n${r.stderr}`);
});

after(() => {
  if (skip || !started) return;
  spawnSync('bash', [join(ROOT, 'scripts/openstack-real.sh'), 'stop', dir], { timeout: 120_000 });
  rmSync(dir, { recursive: true, force: true });
});

function providerYaml(cloud = 'real', extraTop = ''): string {
  return `zookeeper-servers:
  - host: 127.0.0.1
labels:
  - name: cirros
    min-ready: 0
${extraTop}
diskimages:
  - name: ubuntu
    formats: [qcow2]
    elements: [ubuntu-minimal, vm]
providers:
  - name: real
    cloud: ${cloud}
    rate: 0.01
    boot-timeout: 30
    launch-timeout: 120
    clean-floating-ips: true
    diskimages:
      - name: ubuntu
        meta:
          team: infra
    cloud-images:
      - name: cirros
        image-name: cirros
        username: cirros
    pools:
      - name: main
        max-servers: 5
        networks: [private]
        host-key-checking: false
        labels:
          - name: cirros
            cloud-image: cirros
            min-ram: 512
`;
}

async function manager(cloud = 'real', opts: { cloudsFile?: string; onApiCall?: (e: ApiCallEvent) => void } = {}): Promise<{
  m: OpenStackProviderManager; provider: OpenStackProvider; tmp: string;
}> {
  const tmp = mkdtempSync(join(tmpdir(), 'np-osreal-cfg-'));
  writeFileSync(join(tmp, 'nodepool.yaml'), providerYaml(cloud));
  const config = await loadConfig(join(tmp, 'nodepool.yaml'), {
    cloudsFile: opts.cloudsFile ?? join(dir, 'clouds.yaml'), env: { ...process.env, NODEPOOL_STATE_DIR: tmp },
  });
  const provider = config.providers.get('real');
  assert.ok(provider && provider.driver === 'openstack');
  const m = createOpenStackProvider(provider, {
    validateOnStart: false, pollIntervalMs: 500, ...(opts.onApiCall ? { onApiCall: opts.onApiCall } : {}),
  });
  await m.start();
  return { m, provider, tmp };
}

/** The real `openstack` CLI as the cloud's user demo (cloud `real`). */
function openstackCli(args: string[]): string {
  const r = spawnSync('/usr/bin/openstack', args, {
    encoding: 'utf8', timeout: 120_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, OS_CLIENT_CONFIG_FILE: join(dir, 'clouds.yaml'), OS_CLOUD: 'real' },
  });
  assert.equal(r.status, 0, `openstack ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** An application credential of user demo on project demo, made with the real CLI. */
function createAppCredential(name: string, expiresAt?: Date): { id: string; secret: string } {
  const expiry = expiresAt ? ['--expiration', expiresAt.toISOString().slice(0, 19)] : [];
  const ac = JSON.parse(openstackCli(['application', 'credential', 'create', name, ...expiry, '-f', 'json'])) as Record<string, string>;
  assert.match(ac.id ?? '', /^[0-9a-f]{32}$/);
  assert.ok((ac.secret ?? '').length > 20);
  return { id: ac.id ?? '', secret: ac.secret ?? '' };
}

/** clouds.yaml with application-credential clouds of the real Keystone (auth type and auth keys per cloud). */
function appCredClouds(file: string, clouds: Record<string, { type: string; auth: Record<string, string> }>): string {
  const ks = readFileSync(join(dir, 'url'), 'utf8').trim();
  writeFileSync(file, `clouds:\n${Object.entries(clouds).map(([name, c]) => `  ${name}:
    auth_type: ${c.type}
    auth:
      auth_url: ${ks}
${Object.entries(c.auth).map(([k, v]) => `      ${k}: ${v}`).join('\n')}
    region_name: RegionOne
    identity_api_version: 3
`).join('')}`);
  return ks;
}

/** Deletes every server of the project (a reused stack may hold a failed run's leftovers). */
async function cleanSlate(m: OpenStackProviderManager): Promise<void> {
  const servers = await m.listServers();
  for (const s of servers) await m.deleteServer(s.id).catch(() => undefined);
  for (const s of servers) await m.waitForServerDeletion(s.id, 120_000).catch(() => undefined);
}

function spec(provider: OpenStackProvider, nodeId: string, image: ServerSpec['image'], flavor: ServerSpec['flavor']): ServerSpec {
  return {
    name: `cirros-real-${nodeId}`, image, flavor, az: null, keyName: null, networks: ['private'], securityGroups: [],
    userdata: '#cloud-config\n', bootFromVolume: false, volumeSize: 50, configDrive: null,
    metadata: nodepoolServerMetadata({ provider: provider.name, nodeId, imageName: 'cirros', label: 'cirros' }),
  };
}

test('driver: Keystone v3 with domains, Nova limits, flavors and AZs of a real cloud', { skip }, async () => {
  for (const cloud of ['real', 'real-example']) {
    const { m, tmp } = await manager(cloud);
    try {
      const q = await m.getQuota();
      assert.deepEqual(q, { instances: 10, cores: 20, ram: 51200 }, 'Nova\'s default quotas');
      assert.deepEqual((await m.listFlavors()).map((f) => f.name), ['m1.tiny', 'm1.small', 'm1.medium', 'm1.large']);
      assert.deepEqual(await m.listAzs(), ['nova']);
      assert.ok((await m.validate()).length === 0);
    } finally {
      await m.stop();
      rmSync(tmp, { recursive: true, force: true });
    }
  }
});

test('driver: boot, list, floating IP, delete a real Nova server; upload to real Glance and boot from it', { skip }, async () => {
  const { m, provider, tmp } = await manager();
  try {
    await cleanSlate(m);
    const label = provider.pools[0]?.labels[0];
    assert.ok(label);
    const flavor = await m.findFlavor(label);
    assert.equal(flavor.name, 'm1.tiny');
    const created = await m.createServer(spec(provider, '0000000001', { kind: 'cloud', name: 'cirros', id: null }, flavor));
    const server = await m.waitForServer(created.id, 120_000);
    assert.equal(server.status, 'ACTIVE');
    assert.match(server.privateIpv4 ?? '', /^10\.20\./);
    assert.match(server.publicIpv4 ?? '', /^172\.24\.8\./, 'a floating IP from the external network');
    assert.equal(server.metadata.nodepool_node_id, '0000000001');
    assert.deepEqual((await m.listServers()).map((s) => s.id), [created.id]);
    assert.match(await m.getConsoleLog(created.id), /FAKE CONSOLE OUTPUT/);

    // an upload as the builder makes it, then a server from it
    const file = join(tmp, 'ubuntu-0000000001.qcow2');
    const data = randomBytes(2 * 1024 * 1024);
    writeFileSync(file, data);
    const md5 = createHash('md5').update(data).digest('hex');
    let last = 0;
    const img = await m.uploadImage({
      name: `ubuntu-${Math.trunc(Date.now() / 1000)}`, file, format: 'qcow2', md5,
      metadata: { team: 'infra', nodepool_build_id: '0000000001', nodepool_upload_id: '0000000001' },
      onProgress: (bytes) => { last = bytes; },
    });
    assert.equal(img.status, 'active');
    assert.equal(img.checksum, md5);
    assert.equal(last, data.length);
    assert.equal((await m.listImages()).find((i) => i.id === img.id)?.metadata.nodepool_build_id, '0000000001');
    const fromUpload = await m.createServer(spec(provider, '0000000002', { kind: 'upload', externalId: img.id }, flavor));
    assert.equal((await m.waitForServer(fromUpload.id, 120_000)).imageId, img.id);

    for (const id of [created.id, fromUpload.id]) await m.deleteServer(id);
    for (const id of [created.id, fromUpload.id]) await m.waitForServerDeletion(id, 120_000);
    assert.deepEqual(await m.listServers(), []);
    await m.deleteImage(img.id);
    assert.equal((await m.listImages()).some((i) => i.id === img.id), false);
  } finally {
    await m.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('launcher and builder against the real cloud: upload to Glance, boot, list, delete', { skip }, async () => {
  const env = testEnv();
  const imagesDir = join(env.dir, 'images');
  mkdirSync(imagesDir);
  const config = env.write('nodepool.yaml', providerYaml('real', `images-dir: ${imagesDir}\nbuild-log-dir: ${join(env.dir, 'logs')}`)
    .replace(/zookeeper-servers:\n  - host: 127.0.0.1\n/, env.zkYaml));
  process.env.OS_CLIENT_CONFIG_FILE = join(dir, 'clouds.yaml');
  process.env.NODEPOOL_STATE_DIR = env.dir;
  const zk = await connectZk(env);
  const builder = new Builder({
    configFile: config, dibCmd: join(ROOT, 'test/dib/fake-disk-image-create'), buildIntervalMs: 200, uploadIntervalMs: 200,
    cleanupIntervalMs: 60_000, errorBackoffMs: 500, connectTimeoutMs: 10_000,
  });
  const launcher = new Launcher({ configFile: config, hostname: 'real-e2e', watchIntervalMs: 0, cleanupIntervalMs: 60_000 });
  const { m, tmp } = await manager();
  try {
    await cleanSlate(m);
    await builder.start();
    const upload = await waitFor('upload to Glance ready', () => zk.getMostRecentImageUpload('ubuntu', 'real', 'ready'), 120_000);
    const glance = (await m.listImages()).find((i) => i.id === upload.external_id);
    assert.ok(glance, 'the upload is in the real Glance');
    assert.equal(glance.metadata.team, 'infra');
    assert.equal(glance.metadata.nodepool_build_id, upload.build_id);
    const built = readdirSync(imagesDir).find((n) => n.endsWith('.qcow2'));
    assert.ok(built);
    assert.equal(glance.checksum, createHash('md5').update(readFileSync(join(imagesDir, built))).digest('hex'));

    await launcher.start();
    const req = await waitDone(zk, await submit(zk, ['cirros']), 180_000);
    assert.equal(req.state, 'fulfilled');
    const node = await zk.getNode(req.nodes[0] ?? '');
    assert.ok(node?.external_id);
    const listed = await m.listServers();
    assert.deepEqual(listed.map((s) => s.id), [node.external_id], 'a real Nova server');
    assert.equal(listed[0]?.metadata.nodepool_node_id, node.id);
    // the floating IP attached by the driver (the stand-in sends Nova no network events, so
    // Nova's own address list shows only the fixed IP)
    assert.match(node.interface_ip ?? '', /^172\.24\.8\./);
    assert.match(node.private_ipv4 ?? '', /^10\.20\./);
    await release(zk, req);
    await waitFor('server deleted', async () => (await m.listServers()).length === 0, 120_000);
  } finally {
    await launcher.stop();
    await builder.stop();
    await cleanSlate(m).catch(() => undefined);
    for (const im of await m.listImages().catch(() => [])) {
      if ('nodepool_build_id' in im.metadata) await m.deleteImage(im.id).catch(() => undefined);
    }
    await m.stop();
    await zk.close();
    env.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('driver with an application credential (by id, by name): a real Nova server booted and deleted; a wrong secret refused clearly', { skip }, async () => {
  const name = `nodepool-${randomBytes(4).toString('hex')}`;
  const cred = createAppCredential(name);
  // (Keystone keeps a bcrypt hash of the secret, which reads only its first 72 bytes)
  const wrong = `XXXXXX${cred.secret.slice(6)}`;
  const cloudsFile = join(mkdtempSync(join(tmpdir(), 'np-osreal-ac-')), 'clouds.yaml');
  const ks = appCredClouds(cloudsFile, {
    'real-appcred': { type: 'v3applicationcredential', auth: { application_credential_id: cred.id, application_credential_secret: cred.secret } },
    'real-appcred-name': {
      type: 'applicationcredential',
      auth: { application_credential_name: name, application_credential_secret: cred.secret, username: 'demo', user_domain_name: 'Default' },
    },
    'real-appcred-wrong': { type: 'v3applicationcredential', auth: { application_credential_id: cred.id, application_credential_secret: wrong } },
  });
  const password = await manager('real');
  const { m, provider, tmp } = await manager('real-appcred', { cloudsFile });
  try {
    await password.m.getQuota();
    await cleanSlate(m);
    assert.equal(m.projectId(), password.m.projectId(), 'the credential\'s project: demo');
    const label = provider.pools[0]?.labels[0];
    assert.ok(label);
    const flavor = await m.findFlavor(label); // pkgcloud
    const created = await m.createServer(spec(provider, '0000000011', { kind: 'cloud', name: 'cirros', id: null }, flavor)); // ours
    const server = await m.waitForServer(created.id, 120_000);
    assert.equal(server.status, 'ACTIVE');
    assert.match(server.publicIpv4 ?? '', /^172\.24\.8\./, 'a floating IP through the Neutron stand-in, on the credential\'s token');
    assert.deepEqual((await m.listServers()).map((s) => s.id), [created.id]);
    assert.ok((await m.listImages()).some((i) => i.name === 'cirros')); // our Glance module
    await m.deleteServer(created.id); // pkgcloud
    await m.waitForServerDeletion(created.id, 120_000);
    assert.deepEqual(await m.listServers(), []);
    assert.deepEqual(await m.validate(), []);

    const byName = await manager('real-appcred-name', { cloudsFile });
    try {
      assert.deepEqual(await byName.m.listAzs(), ['nova']);
      assert.equal(byName.m.projectId(), password.m.projectId());
    } finally {
      await byName.m.stop();
      rmSync(byName.tmp, { recursive: true, force: true });
    }

    const refused = await manager('real-appcred-wrong', { cloudsFile });
    try {
      await assert.rejects(refused.m.listServers(), (err: unknown) => {
        assert.ok(err instanceof ProviderError);
        assert.equal(err.kind, 'fatal');
        assert.match(err.message, new RegExp(`^cloud real-appcred-wrong: authentication failed for application credential ${cred.id} at ${ks.replace(/[.]/g, '\\.')} `));
        assert.match(err.message, /HTTP 401: The request you have made requires authentication/);
        assert.match(err.message, new RegExp(cloudsFile.replace(/[.]/g, '\\.')));
        assert.doesNotMatch(err.message + String(err.stack), new RegExp(`${wrong}|${cred.secret}`));
        return true;
      });
    } finally {
      await refused.m.stop();
      rmSync(refused.tmp, { recursive: true, force: true });
    }
  } finally {
    await m.stop();
    await password.m.stop();
    openstackCli(['application', 'credential', 'delete', name]);
    rmSync(tmp, { recursive: true, force: true });
    rmSync(join(cloudsFile, '..'), { recursive: true, force: true });
  }
});

test('an application credential that expires: Keystone caps its tokens, the driver renews them in time, then says it expired', { skip }, async () => {
  const name = `nodepool-short-${randomBytes(4).toString('hex')}`;
  const expiresAt = new Date(Math.ceil((Date.now() + 45_000) / 1000) * 1000);
  const cred = createAppCredential(name, expiresAt);
  const cloudsFile = join(mkdtempSync(join(tmpdir(), 'np-osreal-ac-')), 'clouds.yaml');
  appCredClouds(cloudsFile, {
    'real-appcred': { type: 'v3applicationcredential', auth: { application_credential_id: cred.id, application_credential_secret: cred.secret } },
  });
  const tokens: ApiCallEvent[] = [];
  const { m, tmp } = await manager('real-appcred', { cloudsFile, onApiCall: (e) => { if (e.name === 'tokens') tokens.push(e); } });
  try {
    assert.equal((await m.listFlavors()).length, 4);
    assert.deepEqual(tokens.map((t) => t.status), [201]);
    // the token ends with the credential (~45 s), so it is renewed once less than half its life is left
    await new Promise((r) => setTimeout(r, expiresAt.getTime() - Date.now() - 12_000));
    m.invalidateQuotaCache();
    assert.equal((await m.getQuota()).instances, 10); // pkgcloud
    assert.ok((await m.listImages()).length > 0); // ours
    assert.deepEqual(tokens.map((t) => t.status), [201, 201], 'one renewal, no call refused');
    await new Promise((r) => setTimeout(r, expiresAt.getTime() - Date.now() + 2000));
    await assert.rejects(m.listImages(), new RegExp(`authentication failed for application credential ${cred.id} at .*HTTP 401.*has not expired`));
  } finally {
    await m.stop();
    openstackCli(['application', 'credential', 'delete', name]);
    rmSync(tmp, { recursive: true, force: true });
    rmSync(join(cloudsFile, '..'), { recursive: true, force: true });
  }
});

test('launcher with an application credential: a node booted, listed and deleted in the real Nova', { skip }, async () => {
  const name = `nodepool-launcher-${randomBytes(4).toString('hex')}`;
  const cred = createAppCredential(name);
  const env = testEnv();
  const cloudsFile = join(env.dir, 'clouds.yaml');
  appCredClouds(cloudsFile, {
    'real-appcred': { type: 'v3applicationcredential', auth: { application_credential_id: cred.id, application_credential_secret: cred.secret } },
  });
  const config = env.write('nodepool.yaml', providerYaml('real-appcred').replace(/zookeeper-servers:\n  - host: 127.0.0.1\n/, env.zkYaml));
  const saved = { clouds: process.env.OS_CLIENT_CONFIG_FILE, state: process.env.NODEPOOL_STATE_DIR };
  process.env.OS_CLIENT_CONFIG_FILE = cloudsFile;
  process.env.NODEPOOL_STATE_DIR = env.dir;
  const zk = await connectZk(env);
  const launcher = new Launcher({ configFile: config, hostname: 'real-appcred', watchIntervalMs: 0, cleanupIntervalMs: 60_000 });
  const { m, tmp } = await manager('real-appcred', { cloudsFile });
  try {
    await cleanSlate(m);
    await launcher.start();
    const req = await waitDone(zk, await submit(zk, ['cirros']), 180_000);
    assert.equal(req.state, 'fulfilled');
    const node = await zk.getNode(req.nodes[0] ?? '');
    assert.ok(node?.external_id);
    assert.equal(node.provider, 'real');
    const listed = await m.listServers();
    assert.deepEqual(listed.map((s) => s.id), [node.external_id], 'a real Nova server, booted on the credential');
    assert.equal(listed[0]?.metadata.nodepool_node_id, node.id);
    await release(zk, req);
    await waitFor('server deleted', async () => (await m.listServers()).length === 0, 120_000);
  } finally {
    await launcher.stop();
    await cleanSlate(m).catch(() => undefined);
    await m.stop();
    await zk.close();
    if (saved.clouds === undefined) delete process.env.OS_CLIENT_CONFIG_FILE; else process.env.OS_CLIENT_CONFIG_FILE = saved.clouds;
    if (saved.state === undefined) delete process.env.NODEPOOL_STATE_DIR; else process.env.NODEPOOL_STATE_DIR = saved.state;
    openstackCli(['application', 'credential', 'delete', name]);
    env.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  }
});
