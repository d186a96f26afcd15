// Glance v2 through glance.ts: builder uploads (streamed, with progress, tagged with Nodepool's
// properties, checksum-verified, never left half-made), listing, deletion by name or id; cloud
// images looked up by name or id through pkgcloud (Nova's image proxy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NotFoundError, ProviderError } from '@nodepool-ts/core/provider';
import { CIRROS, fixture, startManager } from './helpers.js';

function imageFile(dir: string, bytes: number): { path: string; md5: string; sha256: string } {
  const data = randomBytes(bytes);
  const path = join(dir, `ubuntu-0000000001.qcow2`);
  writeFileSync(path, data);
  return { path, md5: createHash('md5').update(data).digest('hex'), sha256: createHash('sha256').update(data).digest('hex') };
}

const META = { distro: 'ubuntu', nodepool_build_id: '0000000001', nodepool_upload_id: '0000000001', disk_format: 'qcow2' };

test('upload: streamed to Glance with progress, private, tagged, checksum verified, listed', async () => {
  const f = await fixture();
  const m = await startManager(f);
  try {
    const file = imageFile(f.dir, 5 * 1024 * 1024 + 123);
    const progress: number[] = [];
    const img = await m.uploadImage({
      name: 'ubuntu-1700000000', file: file.path, format: 'qcow2', metadata: META, md5: file.md5, sha256: file.sha256,
      onProgress: (bytes, total) => {
        assert.equal(total, 5 * 1024 * 1024 + 123);
        progress.push(bytes);
      },
    });
    assert.equal(img.status, 'active');
    assert.equal(img.checksum, file.md5);
    assert.equal(img.size, 5 * 1024 * 1024 + 123);
    assert.equal(img.format, 'qcow2');
    assert.ok(progress.length > 2 && progress.length <= 102, `${progress.length} progress reports`);
    assert.deepEqual([...progress].sort((a, b) => a - b), progress);
    assert.equal(progress[progress.length - 1], 5 * 1024 * 1024 + 123);
    assert.equal(img.metadata.nodepool_build_id, '0000000001');
    assert.equal(img.metadata.nodepool_upload_id, '0000000001');
    assert.equal(img.metadata.nodepool_provider_name, 'sim-provider');
    assert.equal(img.metadata.distro, 'ubuntu');
    assert.equal(img.metadata['owner_specified.openstack.md5'], file.md5);
    assert.equal(img.metadata['owner_specified.openstack.sha256'], file.sha256);
    const stored = f.sim.state.images.get(img.id);
    assert.equal(stored?.visibility, 'private');
    assert.equal(stored?.containerFormat, 'bare');

    const listed = await m.listImages();
    assert.deepEqual(listed.map((i) => i.name).sort(), [CIRROS, 'ubuntu-1700000000']);
    // builder cleanup and alien-image-list look for Nodepool's properties
    assert.deepEqual(listed.filter((i) => 'nodepool_build_id' in i.metadata).map((i) => i.id), [img.id]);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('listing follows Glance pagination', async () => {
  const f = await fixture();
  const m = await startManager(f);
  try {
    const model = [...f.sim.state.images.values()][0];
    assert.ok(model);
    for (let i = 0; i < 205; i++) {
      const id = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      f.sim.state.images.set(id, { ...model, id, name: `img-${i}`, createdAt: new Date(Date.now() - i * 1000) });
    }
    assert.equal((await m.listImages()).length, 206);
    assert.equal(f.sim.calls('image GET /v2/images'), 2);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('a checksum mismatch or a failed data upload leaves no image behind', async () => {
  const f = await fixture();
  const m = await startManager(f);
  try {
    const file = imageFile(f.dir, 64 * 1024);
    await assert.rejects(m.uploadImage({ name: 'bad-md5', file: file.path, format: 'qcow2', metadata: META, md5: 'f'.repeat(32) }),
      /Glance checksum .* does not match the build's md5 f{32}/);
    f.sim.addFaultRule({ service: 'image', method: 'PUT', path: '/file$', status: 500, times: 1 });
    await assert.rejects(m.uploadImage({ name: 'upload-500', file: file.path, format: 'qcow2', metadata: META }), (err: unknown) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(err.kind, 'retryable');
      assert.match(err.message, /image PUT \/image\/v2\/images\/[0-9a-f-]+\/file failed with HTTP 500/);
      return true;
    });
    await assert.rejects(m.uploadImage({ name: 'no-file', file: join(f.dir, 'missing.qcow2'), format: 'qcow2', metadata: META }),
      /cannot read image file .*missing\.qcow2/);
    assert.deepEqual([...f.sim.state.images.values()].map((i) => i.name), [CIRROS]);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('deleteImage by id or by name; missing is NotFoundError, ambiguous names are refused', async () => {
  const f = await fixture();
  const m = await startManager(f);
  try {
    const file = imageFile(f.dir, 1024);
    const a = await m.uploadImage({ name: 'one', file: file.path, format: 'qcow2', metadata: META });
    await m.uploadImage({ name: 'twin', file: file.path, format: 'qcow2', metadata: META });
    await m.uploadImage({ name: 'twin', file: file.path, format: 'raw', metadata: META });
    await m.deleteImage(a.id);
    await assert.rejects(m.deleteImage(a.id), NotFoundError);
    await assert.rejects(m.deleteImage('twin'), /more than one image is named twin in cloud sim; delete by id/);
    await assert.rejects(m.deleteImage('never-uploaded'), (err: unknown) => err instanceof NotFoundError && err.resource === 'image');
    const twins = (await m.listImages()).filter((i) => i.name === 'twin');
    for (const t of twins) await m.deleteImage(t.id);
    assert.deepEqual((await m.listImages()).map((i) => i.name), [CIRROS]);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('cloud images by name or id (pkgcloud, Nova image proxy); a missing one is null', async () => {
  const f = await fixture();
  const m = await startManager(f);
  try {
    const byName = await m.getCloudImage(CIRROS);
    assert.ok(byName);
    assert.equal(byName.status, 'active');
    const byId = await m.getCloudImage(byName.id);
    assert.equal(byId?.name, CIRROS);
    assert.equal(await m.getCloudImage('no-such-image'), null);
    const calls = f.sim.calls('compute GET /v2.1/images');
    await m.getCloudImage(CIRROS);
    await m.getCloudImage('no-such-image');
    assert.equal(f.sim.calls('compute GET /v2.1/images'), calls, 'hits and misses are cached');
  } finally {
    await m.stop();
    await f.cleanup();
  }
});
