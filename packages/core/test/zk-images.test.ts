// Image builds and uploads (Nodepool's test_zk image cases) on the real ZooKeeper.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newImageBuild, newImageUpload } from '../src/model/index.js';
import { ImageDataError, LockTimeoutError, ZkError, paths, type ZooKeeper } from '../src/zk/index.js';
import { connectZk, dropChroot, uniqueChroot } from './zk-helpers.js';

async function withZk(fn: (zk: ZooKeeper) => Promise<void>): Promise<void> {
  const chroot = uniqueChroot();
  const zk = await connectZk(chroot);
  try {
    await fn(zk);
  } finally {
    await zk.close();
    await dropChroot(chroot);
  }
}

test('storeBuild: increasing sequence (the builds/lock dir bumps it), round trip, update', async () => {
  await withZk(async (zk) => {
    const lock = zk.imageBuildLock('ubuntu');
    assert.ok(await lock.acquire({ blocking: false }));
    const b1 = newImageBuild({ state: 'building', builder: 'nb01', builder_id: 'uuid-1' });
    const id1 = await zk.storeBuild('ubuntu', b1);
    assert.equal(id1, '0000000001', 'first build after the lock dir');
    assert.equal(b1.id, id1);
    const id2 = await zk.storeBuild('ubuntu', newImageBuild({ state: 'building' }));
    assert.equal(id2, '0000000002');
    await lock.release();

    b1.state = 'ready';
    b1.formats = ['vhd', 'qcow2'];
    assert.equal(await zk.storeBuild('ubuntu', b1, id1), id1);
    const got = await zk.getBuild('ubuntu', id1);
    assert.deepEqual(got, { ...b1, formats: ['qcow2', 'vhd'] });
    assert.deepEqual(await zk.getBuildIds('ubuntu'), ['0000000001', '0000000002']);
    assert.deepEqual(await zk.getImageNames(), ['ubuntu']);
    assert.equal(await zk.getBuild('ubuntu', '0000000099'), null);
    assert.equal(await zk.getBuild('nope', '0000000001'), null);
    assert.deepEqual(await zk.getBuilds('nope'), []);
    assert.deepEqual(await zk.getBuildIds('nope'), []);
    assert.deepEqual((await zk.getBuilds('ubuntu', ['ready'])).map((b) => b.id), [id1]);
    assert.deepEqual((await zk.getBuilds('ubuntu', ['building', 'ready'])).map((b) => b.id), [id1, id2]);
  });
});

test('uploads: require the build, round trip, filters, most recent, deleteBuild refused while uploads exist', async () => {
  await withZk(async (zk) => {
    await assert.rejects(
      zk.storeImageUpload('ubuntu', '0000000001', 'rax', newImageUpload()),
      (e: unknown) => e instanceof ZkError && e.code === 'ENONODE' && /Cannot find build 0000000001 of image ubuntu/.test(e.message),
    );
    const bid = await zk.storeBuild('ubuntu', newImageBuild({ state: 'ready' }));
    assert.equal(bid, '0000000000');
    const u1 = newImageUpload({ state: 'ready', state_time: 100, external_id: 'img-1', format: 'qcow2' });
    const uid1 = await zk.storeImageUpload('ubuntu', bid, 'rax', u1);
    assert.equal(uid1, '0000000000');
    assert.deepEqual(await zk.getImageUpload('ubuntu', bid, 'rax', uid1), { ...u1, id: uid1, image: 'ubuntu', build_id: bid, provider: 'rax' });
    const uid2 = await zk.storeImageUpload('ubuntu', bid, 'rax', newImageUpload({ state: 'ready', state_time: 300 }));
    const uid3 = await zk.storeImageUpload('ubuntu', bid, 'rax', newImageUpload({ state: 'uploading', state_time: 400 }));
    const uid4 = await zk.storeImageUpload('ubuntu', bid, 'rax', newImageUpload({ state: 'ready', state_time: 200 }));
    assert.deepEqual(await zk.getUploadIds('ubuntu', bid, 'rax'), [uid1, uid2, uid3, uid4]);
    assert.deepEqual(await zk.getBuildProviders('ubuntu', bid), ['rax']);
    assert.deepEqual((await zk.getImageUploads('ubuntu', bid, 'rax', ['uploading'])).map((u) => u.id), [uid3]);
    assert.deepEqual((await zk.getMostRecentBuildImageUploads(2, 'ubuntu', bid, 'rax', 'ready')).map((u) => u.id), [uid2, uid4]);
    assert.deepEqual((await zk.getMostRecentBuildImageUploads(2, 'ubuntu', bid, 'rax')).map((u) => u.id), [uid3, uid2]);
    assert.equal((await zk.getMostRecentImageUpload('ubuntu', 'rax'))?.id, uid2);
    assert.equal((await zk.getMostRecentImageUpload('ubuntu', 'rax', 'uploading'))?.id, uid3);
    assert.equal(await zk.getMostRecentImageUpload('ubuntu', 'other'), null);
    assert.equal(await zk.getImageUpload('ubuntu', bid, 'rax', '0000000099'), null);
    assert.deepEqual(await zk.getImageUploads('ubuntu', bid, 'none'), []);

    // an upload lock dir is not an upload
    const ul = zk.uploadLock('ubuntu', bid, 'rax');
    assert.ok(await ul.acquire({ blocking: false }));
    assert.deepEqual(await zk.getUploadIds('ubuntu', bid, 'rax'), [uid1, uid2, uid3, uid4]);
    await ul.release();

    // a newer build's upload wins getMostRecentImageUpload by state_time
    const bid2 = await zk.storeBuild('ubuntu', newImageBuild({ state: 'ready' }));
    const newest = await zk.storeImageUpload('ubuntu', bid2, 'rax', newImageUpload({ state: 'ready', state_time: 500 }));
    assert.deepEqual(await zk.getMostRecentImageUpload('ubuntu', 'rax'), await zk.getImageUpload('ubuntu', bid2, 'rax', newest));

    assert.equal(await zk.deleteBuild('ubuntu', bid), false);
    assert.ok(await zk.getBuild('ubuntu', bid), 'nothing deleted');
    for (const u of [uid1, uid2, uid3, uid4]) await zk.deleteUpload('ubuntu', bid, 'rax', u);
    await zk.deleteUpload('ubuntu', bid, 'rax', uid1);
    assert.equal(await zk.deleteBuild('ubuntu', bid), true);
    assert.equal(await zk.getBuild('ubuntu', bid), null);
    assert.equal(await zk.deleteBuild('ubuntu', bid), true, 'already gone');

    await zk.deleteBuildProvider('ubuntu', bid2, 'rax');
    assert.deepEqual(await zk.getBuildProviders('ubuntu', bid2), []);
  });
});

test('getMostRecentBuilds orders by state_time, optionally by state', async () => {
  await withZk(async (zk) => {
    const ids: string[] = [];
    for (const [state, t] of [['ready', 10], ['failed', 40], ['ready', 30], ['ready', 20]] as const) {
      ids.push(await zk.storeBuild('img', newImageBuild({ state, state_time: t })));
    }
    assert.deepEqual((await zk.getMostRecentBuilds(2, 'img', 'ready')).map((b) => b.state_time), [30, 20]);
    assert.deepEqual((await zk.getMostRecentBuilds(3, 'img')).map((b) => b.state_time), [40, 30, 20]);
    assert.deepEqual(await zk.getMostRecentBuilds(2, 'img', 'deleting'), []);
    assert.deepEqual(await zk.getMostRecentBuilds(2, 'none'), []);
  });
});

test('build requests: create, check, remove', async () => {
  await withZk(async (zk) => {
    assert.equal(await zk.hasBuildRequest('img'), false);
    await zk.submitBuildRequest('img');
    await zk.submitBuildRequest('img');
    assert.equal(await zk.hasBuildRequest('img'), true);
    assert.deepEqual(await zk.getData(paths.imageBuildRequest('img')), Buffer.alloc(0));
    await zk.removeBuildRequest('img');
    await zk.removeBuildRequest('img');
    assert.equal(await zk.hasBuildRequest('img'), false);
  });
});

test('image-status: a build request is pending until a builder holds the lock and made its build; pause flag', async () => {
  await withZk(async (zk) => {
    assert.equal(await zk.getBuildRequest('img'), null);
    const before = Date.now() / 1000;
    await zk.submitBuildRequest('img');
    const pending = await zk.getBuildRequest('img');
    assert.equal(pending?.pending, true);
    assert.ok(pending !== null && Math.abs(pending.createdAt - before) < 5, 'created time from the znode stat');
    const lock = zk.imageBuildLock('img');
    assert.ok(await lock.acquire({ blocking: false }));
    assert.equal((await zk.getBuildRequest('img'))?.pending, true, 'locked, no build yet');
    await zk.storeBuild('img', newImageBuild({ state: 'building' }));
    assert.equal((await zk.getBuildRequest('img'))?.pending, false, 'building');
    await lock.release();
    assert.equal((await zk.getBuildRequest('img'))?.pending, true, 'nobody holds the lock');

    assert.equal(await zk.isImagePaused('img'), false);
    await zk.setImagePaused('img', true);
    await zk.setImagePaused('img', true);
    assert.equal(await zk.isImagePaused('img'), true);
    assert.deepEqual(await zk.getData('/nodepool/images/img/pause'), Buffer.alloc(0), "Nodepool's path, no data");
    assert.deepEqual(await zk.getBuildIds('img'), ['0000000001'], 'the flag is not a build');
    await zk.setImagePaused('img', false);
    await zk.setImagePaused('img', false);
    assert.equal(await zk.isImagePaused('img'), false);
  });
});

test('export-image-data / import-image-data: a round trip; sequence numbers go past the imported; bad data writes nothing', async () => {
  let exported: Record<string, string> = {};
  let lastUpload = '';
  await withZk(async (zk) => {
    const lock = zk.imageBuildLock('img');
    assert.ok(await lock.acquire({ blocking: false }));
    const b1 = await zk.storeBuild('img', newImageBuild({ state: 'ready', builder: 'nb01', formats: ['qcow2'] }));
    const b2 = await zk.storeBuild('img', newImageBuild({ state: 'ready', builder: 'nb01', formats: ['qcow2'] }));
    await lock.release();
    const ups: string[] = [];
    for (let i = 0; i < 3; i++) {
      ups.push(await zk.storeImageUpload('img', b2, 'cloud', newImageUpload({ state: 'ready', external_id: `ext-${i}`, external_name: 'img-1' })));
    }
    assert.ok(await zk.deleteBuild('img', b1), 'a build without uploads is deleted');
    lastUpload = ups[2] ?? '';
    await zk.setImagePaused('img', true);
    exported = await zk.exportImageData();
    assert.deepEqual(Object.keys(exported), [
      '/nodepool/images/img/pause', `/nodepool/images/img/builds/${b2}`,
      ...ups.map((u) => `/nodepool/images/img/builds/${b2}/providers/cloud/images/${u}`),
    ]);
    assert.equal(exported['/nodepool/images/img/pause'], '');
    assert.equal(JSON.parse(exported[`/nodepool/images/img/builds/${b2}`] ?? '{}').builder, 'nb01');
  });
  // into an empty tree (a new ZooKeeper)
  await withZk(async (zk) => {
    const bad = { ...exported, '/nodepool/nodes/0000000001': '{}' };
    await assert.rejects(zk.importImageData(bad), (err: unknown) => err instanceof ImageDataError && /nodes\/0000000001: not an image build/.test(err.message));
    await assert.rejects(zk.importImageData({ ...exported, '/nodepool/images/img/builds/0000000009': 'garbage{' }), /builds\/0000000009: not an image build/);
    await assert.rejects(zk.importImageData({ '/nodepool/images/img/pause': 3 }), /the value is not a string/);
    assert.deepEqual(await zk.getImageNames(), [], 'nothing written');

    assert.equal(await zk.importImageData(exported), 5);
    assert.deepEqual(await zk.exportImageData(), exported, 'the same data back');
    assert.equal(await zk.isImagePaused('img'), true);
    const [buildId] = await zk.getBuildIds('img');
    // the next build and upload get numbers past the imported ones
    const next = await zk.storeBuild('img', newImageBuild({ state: 'building' }));
    assert.ok(Number(next) > Number(buildId), `${next} > ${buildId}`);
    const up = await zk.storeImageUpload('img', buildId ?? '', 'cloud', newImageUpload({ state: 'uploading' }));
    assert.ok(Number(up) > Number(lastUpload), `upload ${up} > ${lastUpload}`);
    // importing twice overwrites in place
    assert.equal(await zk.importImageData(exported), 5);
    assert.deepEqual((await zk.getUploadIds('img', buildId ?? '', 'cloud')).length, 4);
  });
});

test('image, build-number and upload locks conflict across sessions; blocking times out', async () => {
  const chroot = uniqueChroot();
  const a = await connectZk(chroot);
  const b = await connectZk(chroot);
  try {
    for (const [la, lb] of [
      [a.imageBuildLock('img'), b.imageBuildLock('img')],
      [a.buildLock('img', '0000000001'), b.buildLock('img', '0000000001')],
      [a.uploadLock('img', '0000000001', 'p'), b.uploadLock('img', '0000000001', 'p')],
    ] as const) {
      assert.ok(await la.acquire({ blocking: false }));
      assert.equal(await lb.acquire({ blocking: false }), false);
      await assert.rejects(lb.acquire({ blocking: true, timeoutMs: 100 }), LockTimeoutError);
      await la.release();
      assert.ok(await lb.acquire({ blocking: true, timeoutMs: 1000 }));
      await lb.release();
    }
    assert.equal(await a.exists(paths.imageBuildLock('img')), true);
    assert.equal(await a.exists(paths.buildLock('img', '0000000001')), true);
    assert.equal(await a.exists(paths.uploadLock('img', '0000000001', 'p')), true);
  } finally {
    await a.close();
    await b.close();
    await dropChroot(chroot);
  }
});
