// Tenant limits and the unmanaged-usage estimate (§3.6); the image store used by the builder (§4.5).
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NotFoundError, ProviderAbortedError, ProviderError, nodepoolServerMetadata } from '@nodepool-ts/core/provider';
import { fakeConfig, spec, started, tempDir } from './helpers.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => { for (const c of cleanup.splice(0)) await c(); });

describe('fake cloud quota', () => {
  it('getQuota reports the configured limits, Infinity when unlimited', async () => {
    const p = await started(fakeConfig(), {}, cleanup);
    assert.deepEqual(await p.getQuota(), { instances: Infinity, cores: Infinity, ram: Infinity });
    const q = await started(fakeConfig({ quota: { instances: 10, cores: 40, ram: 81920 } }), {}, cleanup);
    assert.deepEqual(await q.getQuota(), { instances: 10, cores: 40, ram: 81920 });
  });

  it('getQuota is cached until invalidated', async () => {
    const p = await started(fakeConfig({ quota: { instances: 10, cores: 40, ram: 81920 } }), {}, cleanup);
    await p.getQuota();
    p.setQuota({ instances: 3 });
    assert.equal((await p.getQuota()).instances, 10, 'still cached');
    p.invalidateQuotaCache();
    assert.equal((await p.getQuota()).instances, 3);
    // a cache hit makes no API call, so an API outage does not break quota checks
    p.setFaults({ apiErrorRate: 1 });
    assert.equal((await p.getQuota()).instances, 3);
    p.invalidateQuotaCache();
    await assert.rejects(p.getQuota(), ProviderError);
  });

  it('unmanagedUsage counts everything but our live nodes', async () => {
    const p = await started(fakeConfig(), {}, cleanup);
    const medium = { id: 'medium', name: 'm1.medium', vcpus: 2, ram: 4096 };
    await p.createServer(spec({}, '1'));                                   // ours, known
    await p.createServer(spec({ flavor: medium }, '2'));                   // ours, leaked (not in ZK)
    await p.createServer(spec({ metadata: nodepoolServerMetadata({         // another provider's
      provider: 'other', nodeId: '1', imageName: 'i', label: 'l' }) }));
    await p.createServer(spec({ flavor: medium, metadata: {} }));          // not nodepool's at all
    assert.deepEqual(await p.unmanagedUsage(new Set(['1'])), { instances: 3, cores: 5, ram: 10240 });
    assert.deepEqual(await p.unmanagedUsage(new Set(['1', '2'])), { instances: 2, cores: 3, ram: 6144 });
  });
});

describe('fake cloud images', () => {
  it('uploads record name, size, md5, format and metadata without copying', async () => {
    const t = tempDir();
    cleanup.push(async () => t.remove());
    const file = join(t.dir, 'fake-image-0000000001.qcow2');
    const data = Buffer.alloc(300_000, 7);
    writeFileSync(file, data);
    const p = await started(fakeConfig(), {}, cleanup);
    const progress: number[] = [];
    const img = await p.uploadImage({
      name: 'fake-image-1700000000', file, format: 'qcow2',
      metadata: { nodepool_build_id: '0000000001', nodepool_upload_id: '0000000001', disk_format: 'qcow2' },
      onProgress: (bytes, total) => { assert.equal(total, data.length); progress.push(bytes); },
    });
    assert.equal(img.name, 'fake-image-1700000000');
    assert.equal(img.status, 'active');
    assert.equal(img.size, data.length);
    assert.equal(img.format, 'qcow2');
    assert.equal(img.checksum, createHash('md5').update(data).digest('hex'));
    assert.equal(img.metadata.nodepool_build_id, '0000000001');
    assert.equal(progress.at(-1), data.length);
    assert.ok(progress.every((b, i) => i === 0 || b > (progress[i - 1] ?? 0)));

    const given = await p.uploadImage({ name: 'x', file, format: 'raw', metadata: {}, md5: 'abc' });
    assert.equal(given.checksum, 'abc', 'a checksum from the build is trusted, the file not re-read');

    // the upload is bootable
    const s = await p.createServer(spec({ image: { kind: 'upload', externalId: img.id } }));
    assert.equal(s.imageId, img.id);

    const names = (await p.listImages()).map((i) => i.name);
    assert.ok(names.includes('fake-image-1700000000') && names.includes('Fake Precise'));
    await p.deleteImage(img.id);
    await assert.rejects(p.deleteImage(img.id), (e: unknown) => e instanceof NotFoundError && e.resource === 'image');
    await p.deleteImage('x'); // by name
    assert.deepEqual((await p.listImages()).map((i) => i.name), ['Fake Precise']);
    await assert.rejects(p.createServer(spec({ image: { kind: 'upload', externalId: img.id } })),
      (e: unknown) => e instanceof ProviderError && e.kind === 'fatal');
  });

  it('a missing file is a fatal upload error; an aborted upload is ProviderAbortedError', async () => {
    const t = tempDir();
    cleanup.push(async () => t.remove());
    const p = await started(fakeConfig(), {}, cleanup);
    await assert.rejects(p.uploadImage({ name: 'x', file: join(t.dir, 'nope'), format: 'raw', metadata: {} }),
      (e: unknown) => e instanceof ProviderError && e.kind === 'fatal');
    const file = join(t.dir, 'img.raw');
    writeFileSync(file, Buffer.alloc(4 << 20));
    const ac = new AbortController();
    const up = p.uploadImage({ name: 'x', file, format: 'raw', metadata: {}, signal: ac.signal,
      onProgress: () => ac.abort() });
    await assert.rejects(up, ProviderAbortedError);
    assert.equal((await p.listImages()).length, 1);
  });

  it('deleting by an ambiguous name is refused', async () => {
    const t = tempDir();
    cleanup.push(async () => t.remove());
    const file = join(t.dir, 'a');
    writeFileSync(file, 'a');
    const p = await started(fakeConfig(), {}, cleanup);
    await p.uploadImage({ name: 'dup', file, format: 'raw', metadata: {}, md5: '1' });
    await p.uploadImage({ name: 'dup', file, format: 'raw', metadata: {}, md5: '2' });
    await assert.rejects(p.deleteImage('dup'), /more than one/);
    await assert.rejects(p.getCloudImage('dup'), /more than one/);
  });

  it('a removed cloud image is no longer found', async () => {
    const p = await started(fakeConfig(), {}, cleanup);
    await p.deleteImage('Fake Precise');
    assert.equal(await p.getCloudImage('Fake Precise'), null);
    await assert.rejects(p.createServer(spec()), ProviderError);
  });
});
