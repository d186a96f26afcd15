// Integration with a real OpenStack: Keystone, Glance, Placement and Nova (fake compute driver)
// from Debian's archive, started by scripts/openstack-real.sh (Neutron stood in for by the
// simulator). The driver, the launcher and the builder work against it exactly as against a
// production cloud. Skipped when the packages are not installed (scripts/install-deps.sh
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
import { createOpenStackProvider, type OpenStackProviderManager } from '@nodepool-ts/driver-openstack';
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
  const r = spawnSync('bash', [join(ROOT, 'scripts/openstack-real.sh'), 'start', dir], { encoding: 'utf8', timeout: 400_000 });
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

async function manager(cloud = 'real'): Promise<{ m: OpenStackProviderManager; provider: OpenStackProvider; tmp: string }> {
  const tmp = mkdtempSync(join(tmpdir(), 'np-osreal-cfg-'));
  writeFileSync(join(tmp, 'nodepool.yaml'), providerYaml(cloud));
  const config = await loadConfig(join(tmp, 'nodepool.yaml'), { cloudsFile: join(dir, 'clouds.yaml'), env: { ...process.env, NODEPOOL_STATE_DIR: tmp } });
  const provider = config.providers.get('real');
  assert.ok(provider && provider.driver === 'openstack');
  const m = createOpenStackProvider(provider, { validateOnStart: false, pollIntervalMs: 500 });
  await m.start();
  return { m, provider, tmp };
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
