// The builder on the simulator: a DIB build (the fake disk-image-create) is uploaded to Glance —
// named by image-name-format, private, tagged with Nodepool's properties and the provider's meta,
// checksum-verified — and the launcher then boots a node from exactly that image.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Builder } from '@nodepool-ts/builder';
import { Launcher } from '@nodepool-ts/launcher';
import { connectZk, waitFor } from '../helpers/harness.js';
import { builderSetup, release, submit, waitDone } from './helpers.js';

const ROOT = resolve(import.meta.dirname, '../..');
process.env.NODEPOOL_OPENSTACK_POLL_INTERVAL = '0.05';

test('builder uploads to Glance; the launcher boots from the upload', async () => {
  const { sim, env, imagesDir, config } = await builderSetup({
    diskimageMeta: '        meta:\n          distro: ubuntu\n          team: infra',
  });
  process.env.OS_CLIENT_CONFIG_FILE = join(env.dir, 'clouds.yaml');
  process.env.NODEPOOL_STATE_DIR = env.dir;
  const zk = await connectZk(env);
  const builder = new Builder({
    configFile: config, dibCmd: join(ROOT, 'test/dib/fake-disk-image-create'), buildIntervalMs: 100,
    uploadIntervalMs: 100, cleanupIntervalMs: 60_000, errorBackoffMs: 200, connectTimeoutMs: 10_000,
    env: { ...process.env, FAKE_DIB_SIZE: String(3 * 1024 * 1024) },
  });
  let launcher: Launcher | null = null;
  try {
    await builder.start();
    const upload = await waitFor('upload ready', () => zk.getMostRecentImageUpload('ubuntu', 'sim', 'ready'), 30_000);
    const image = sim.state.images.get(upload.external_id ?? '');
    assert.ok(image, 'external_id is the Glance image id');
    assert.equal(image.name, upload.external_name);
    assert.match(image.name ?? '', /^ubuntu-\d{10}$/);
    assert.equal(image.status, 'active');
    assert.equal(image.visibility, 'private');
    assert.equal(image.diskFormat, 'qcow2');
    assert.equal(image.size, 3 * 1024 * 1024);
    assert.equal(image.props.nodepool_build_id, upload.build_id);
    assert.equal(image.props.nodepool_upload_id, upload.id);
    assert.equal(image.props.distro, 'ubuntu');
    assert.equal(image.props.team, 'infra');
    const built = readdirSync(imagesDir).find((n) => n.endsWith('.qcow2'));
    assert.ok(built);
    assert.equal(image.checksum, createHash('md5').update(readFileSync(join(imagesDir, built))).digest('hex'));

    launcher = new Launcher({ configFile: config, hostname: 'os-builder-e2e', watchIntervalMs: 0, cleanupIntervalMs: 60_000 });
    await launcher.start();
    const req = await waitDone(zk, await submit(zk, ['built']));
    assert.equal(req.state, 'fulfilled');
    const node = await zk.getNode(req.nodes[0] ?? '');
    assert.equal(sim.state.servers.get(node?.external_id ?? '')?.imageId, image.id);
    assert.equal(sim.state.servers.get(node?.external_id ?? '')?.metadata.nodepool_image_name, 'ubuntu');
    await release(zk, req);
    await waitFor('server gone', () => sim.state.servers.size === 0);
  } finally {
    await launcher?.stop();
    await builder.stop();
    await zk.close();
    await sim.stop();
    env.cleanup();
  }
});

test('image-upload-timeout: an upload Glance never finishes fails after the timeout, leaves no image, and is retried', async () => {
  const { sim, env, config } = await builderSetup({ provider: '    image-upload-timeout: 2\n' });
  process.env.OS_CLIENT_CONFIG_FILE = join(env.dir, 'clouds.yaml');
  process.env.NODEPOOL_STATE_DIR = env.dir;
  const zk = await connectZk(env);
  // the first image data upload hangs: only the timeout ends it
  sim.setFaults({ rules: [{ service: 'image', method: 'PUT', path: '/file$', hang: true, times: 1 }] });
  const builder = new Builder({
    configFile: config, dibCmd: join(ROOT, 'test/dib/fake-disk-image-create'), buildIntervalMs: 100,
    uploadIntervalMs: 100, cleanupIntervalMs: 60_000, errorBackoffMs: 200, connectTimeoutMs: 10_000,
  });
  try {
    await builder.start();
    const started = Date.now();
    const [failed] = await waitFor('a failed upload', async () => {
      const build = await zk.getMostRecentBuilds(1, 'ubuntu', 'ready');
      const id = build[0]?.id;
      if (id === undefined || id === null) return null;
      const f = await zk.getImageUploads('ubuntu', id, 'sim', ['failed']);
      return f.length > 0 ? f : null;
    }, 30_000);
    assert.ok(failed);
    assert.ok(Date.now() - started >= 1500, 'not before the timeout');
    const ready = await waitFor('the retried upload ready', () => zk.getMostRecentImageUpload('ubuntu', 'sim', 'ready'), 30_000);
    // the timed-out upload's image was deleted: only the ready one is in Glance
    assert.deepEqual([...sim.state.images.values()].filter((i) => i.props.nodepool_build_id !== undefined).map((i) => i.id), [ready.external_id]);
  } finally {
    await builder.stop();
    await zk.close();
    await sim.stop();
    env.cleanup();
  }
});
