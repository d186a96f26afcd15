// Commands that talk to the cloud through a provider manager: alien-image-list and delete --now,
// against the fake driver with a state file (so the test and the CLI see the same cloud).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '@nodepool-ts/core/config';
import type { FakeProvider } from '@nodepool-ts/core/config';
import { newImageUpload, newNode } from '@nodepool-ts/core/model';
import { paths } from '@nodepool-ts/core/zk';
import { DEFAULT_FAKE_IMAGE, createFakeProvider } from '@nodepool-ts/driver-fake';
import type { FakeProviderManager } from '@nodepool-ts/driver-fake';
import { makeFixture, runCli } from './helpers.js';
import type { Fixture } from './helpers.js';

describe('cloud commands (fake provider)', () => {
  let fx: Fixture;
  let cloud: FakeProviderManager;
  const cfg = () => ['-c', fx.configFile];

  before(async () => {
    fx = await makeFixture({ fakeStateFile: true });
    const config = await loadConfig(fx.configFile);
    const provider = config.providers.get('fake-provider');
    assert.ok(provider?.driver === 'fake');
    cloud = createFakeProvider(provider as FakeProvider);
    await cloud.start();
  });
  after(async () => {
    await cloud.stop();
    await fx.cleanup();
  });

  test('alien-image-list: builder-tagged images without a READY upload', async () => {
    const empty = await runCli([...cfg(), 'alien-image-list']);
    assert.deepEqual(empty, {
      code: 0, stderr: '',
      stdout: '+----------+------+----------+\n| Provider | Name | Image ID |\n+----------+------+----------+\n+----------+------+----------+\n',
    });
    const file = join(fx.dir, 'image.qcow2');
    writeFileSync(file, 'not really an image');
    const tagged = await cloud.uploadImage({
      name: 'fake-dib-image-1555000001', file, format: 'qcow2', md5: '0',
      metadata: { nodepool_build_id: '0000000001', nodepool_upload_id: '0000000001', nodepool_provider_name: 'fake-provider' },
    });
    await cloud.uploadImage({ name: 'someone-elses-image', file, format: 'qcow2', md5: '0', metadata: {} });
    const r = await runCli([...cfg(), 'alien-image-list', 'fake-provider']);
    assert.equal(r.code, 0, r.stderr);
    const width = tagged.id.length;
    const rule = `+---------------+---------------------------+-${'-'.repeat(width)}-+`;
    assert.equal(r.stdout, [
      rule, `| Provider      | Name                      | ${'Image ID'.padEnd(width)} |`, rule,
      `| fake-provider | fake-dib-image-1555000001 | ${tagged.id} |`, rule, '',
    ].join('\n'));
    assert.deepEqual(JSON.parse((await runCli([...cfg(), 'alien-image-list', '--json'])).stdout),
      [{ provider: 'fake-provider', name: 'fake-dib-image-1555000001', id: tagged.id }]);
    // another provider name filters everything out
    assert.equal((await runCli([...cfg(), 'alien-image-list', 'other'])).stdout, empty.stdout);

    // once ZooKeeper knows it as a READY upload it is no longer alien
    await fx.zk.mkdirp(paths.upload('fake-dib-image', '0000000001', 'fake-provider', '0000000001'));
    await fx.zk.storeImageUpload('fake-dib-image', '0000000001', 'fake-provider',
      newImageUpload({ state: 'ready', state_time: Date.now() / 1000, external_id: tagged.id }), '0000000001');
    assert.equal((await runCli([...cfg(), 'alien-image-list'])).stdout, empty.stdout);
  });

  test('delete --now deletes the server, then the znode', async () => {
    const [flavor] = await cloud.listFlavors();
    assert.ok(flavor);
    const server = await cloud.createServer({
      name: 'fake-label-fake-provider-x', image: { kind: 'cloud', name: DEFAULT_FAKE_IMAGE.name, id: DEFAULT_FAKE_IMAGE.id },
      flavor, az: null, keyName: null, networks: [], securityGroups: [], userdata: null, bootFromVolume: false,
      volumeSize: 0, configDrive: null, metadata: {},
    });
    const node = newNode({
      state: 'ready', state_time: Date.now() / 1000, provider: 'fake-provider', pool: 'main', type: ['fake-label'],
      external_id: server.id,
    });
    await fx.zk.storeNode(node);
    const r = await runCli([...cfg(), 'delete', node.id ?? '', '--now']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\+----\+/); // the (now empty) list of that id
    assert.equal(await fx.zk.exists(paths.node(node.id ?? '')), false);
    const again = createFakeProvider(cloud.config as FakeProvider);
    await again.start();
    try {
      assert.equal(await again.getServer(server.id), null);
    } finally {
      await again.stop();
    }
  });
});

test('alien-image-list: a provider whose images cannot be listed is logged and skipped', async () => {
  const fx = await makeFixture({ fakeFaults: '      api-error-rate: 1\n' });
  try {
    const r = await runCli(['-c', fx.configFile, 'alien-image-list']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, '+----------+------+----------+\n| Provider | Name | Image ID |\n+----------+------+----------+\n+----------+------+----------+\n');
    assert.match(r.stderr, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING nodepool\.cmd\.nodepoolcmd: Exception listing alien images for fake-provider: .+\n$/);
  } finally {
    await fx.cleanup();
  }
});
