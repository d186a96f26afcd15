// Builds and uploads following the config and time (§9.2): provider/image addition and removal,
// rebuild-age, rotation of builds and logs, cleanup of broken upload records, manual requests,
// pause, dib-image-delete / image-delete marks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import { TestEnv, sleep, waitFor } from './helpers.js';

async function withEnv(fn: (env: TestEnv) => Promise<void>): Promise<void> {
  const env = new TestEnv();
  try {
    await fn(env);
  } finally {
    await env.cleanup();
  }
}

async function readyUpload(zk: ZooKeeper, image: string, buildId: string, provider: string) {
  return waitFor(`ready upload of ${image}-${buildId} to ${provider}`, async () =>
    (await zk.getImageUploads(image, buildId, provider, ['ready']))[0]);
}

async function readyBuild(zk: ZooKeeper, image: string, buildId: string) {
  return waitFor(`ready build ${image}-${buildId}`, async () => {
    const b = await zk.getBuild(image, buildId);
    return b?.state === 'ready' ? b : null;
  });
}

/** Age a build by `seconds` the way Nodepool's tests do (under the image build lock). */
async function expire(zk: ZooKeeper, image: string, buildId: string, seconds: number): Promise<void> {
  const lock = zk.imageBuildLock(image);
  await lock.acquire({ blocking: true, timeoutMs: 5000 });
  try {
    const b = await zk.getBuild(image, buildId);
    assert.ok(b);
    b.state_time -= seconds;
    await zk.storeBuild(image, b, buildId);
  } finally {
    await lock.release();
  }
}

test('provider addition and removal: uploads follow the providers that list the image', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image' }], providers: [{ name: 'fake-provider' }] });
  await env.builder();
  const zk = await env.zk();
  const first = await readyUpload(zk, 'fake-image', '0000000001', 'fake-provider');
  env.writeConfig({ diskimages: [{ name: 'fake-image' }], providers: [{ name: 'fake-provider' }, { name: 'fake-provider2' }] });
  const second = await readyUpload(zk, 'fake-image', '0000000001', 'fake-provider2');
  // provider2 no longer lists the image: its upload goes (record and cloud image), provider1's stays
  env.writeConfig({
    diskimages: [{ name: 'fake-image' }],
    providers: [{ name: 'fake-provider' }, { name: 'fake-provider2', diskimages: [] }],
  });
  await waitFor('provider2 upload deleted', async () =>
    (await zk.getUploadIds('fake-image', '0000000001', 'fake-provider2')).length === 0);
  const cloud = await env.cloud('fake-provider2');
  assert.equal((await cloud.listImages()).some((i) => i.id === second.external_id), false);
  await cloud.stop();
  const still = await zk.getMostRecentImageUpload('fake-image', 'fake-provider');
  assert.equal(still?.id, first.id);
  assert.equal(still?.external_id, first.external_id);
}));

test('image addition and removal: a removed image loses its uploads, build and files', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image' }] });
  await env.builder();
  const zk = await env.zk();
  await readyUpload(zk, 'fake-image', '0000000001', 'fake-provider');
  env.writeConfig({ diskimages: [{ name: 'fake-image' }, { name: 'fake-image2' }] });
  await readyUpload(zk, 'fake-image2', '0000000001', 'fake-provider');
  assert.ok(existsSync(join(env.imagesDir, 'fake-image2-0000000001.qcow2')));
  env.writeConfig({ diskimages: [{ name: 'fake-image' }] });
  await waitFor('fake-image2 build 0000000001 deleted', async () => (await zk.getBuild('fake-image2', '0000000001')) === null);
  assert.deepEqual(await zk.getBuildIds('fake-image2'), []);
  assert.equal(readdirSync(env.imagesDir).some((f) => f.startsWith('fake-image2-')), false);
  assert.ok(await zk.getBuild('fake-image', '0000000001'));
}));

test('rebuild-age expiry builds 0000000002 with its log; rotation keeps 2 builds and deletes the oldest with its log', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image' }], buildLogRetention: 1 });
  await env.builder();
  const zk = await env.zk();
  await readyBuild(zk, 'fake-image', '0000000001');
  const up1 = await readyUpload(zk, 'fake-image', '0000000001', 'fake-provider');
  await expire(zk, 'fake-image', '0000000001', 172800);
  await readyBuild(zk, 'fake-image', '0000000002');
  await readyUpload(zk, 'fake-image', '0000000002', 'fake-provider');
  assert.ok(existsSync(join(env.logDir, 'fake-image-0000000002.log')));
  assert.equal((await zk.getBuilds('fake-image', ['ready'])).length, 2);

  await expire(zk, 'fake-image', '0000000002', 86400);
  await readyBuild(zk, 'fake-image', '0000000003');
  await waitFor('build 0000000001 deleted', async () => (await zk.getBuild('fake-image', '0000000001')) === null);
  assert.equal((await zk.getBuilds('fake-image', ['ready'])).length, 2);
  assert.equal(existsSync(join(env.imagesDir, 'fake-image-0000000001.qcow2')), false);
  assert.equal(existsSync(join(env.imagesDir, 'fake-image-0000000001.d')), false);
  // retention 1: before build 3 the logs of builds 1 and 2 were pruned to the newest one
  assert.equal(existsSync(join(env.logDir, 'fake-image-0000000001.log')), false);
  assert.ok(existsSync(join(env.logDir, 'fake-image-0000000003.log')));
  const cloud = await env.cloud();
  assert.equal((await cloud.listImages()).some((i) => i.id === up1.external_id), false);
  await cloud.stop();
}));

test('rotation with an upload whose external name/id were lost still removes the record', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image' }] });
  await env.builder();
  const zk = await env.zk();
  await readyUpload(zk, 'fake-image', '0000000001', 'fake-provider');
  await expire(zk, 'fake-image', '0000000001', 172800);
  await readyUpload(zk, 'fake-image', '0000000002', 'fake-provider');
  const upload = (await zk.getImageUploads('fake-image', '0000000001', 'fake-provider', ['ready']))[0];
  assert.ok(upload?.id);
  const lock = zk.uploadLock('fake-image', '0000000001', 'fake-provider');
  await lock.acquire({ blocking: true, timeoutMs: 5000 });
  await zk.storeImageUpload('fake-image', '0000000001', 'fake-provider', { ...upload, external_id: null, external_name: null }, upload.id);
  await lock.release();
  await expire(zk, 'fake-image', '0000000002', 86400);
  await waitFor('build 0000000001 deleted', async () => (await zk.getBuild('fake-image', '0000000001')) === null);
  assert.deepEqual(await zk.getUploadIds('fake-image', '0000000001', 'fake-provider'), []);
  await readyUpload(zk, 'fake-image', '0000000003', 'fake-provider');
  assert.equal((await zk.getBuilds('fake-image', ['ready'])).length, 2);
}));

test('a stale uploading record of a kept build (lock free) is removed', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image' }] });
  await env.builder();
  const zk = await env.zk();
  const upload = await readyUpload(zk, 'fake-image', '0000000001', 'fake-provider');
  const lock = zk.uploadLock('fake-image', '0000000001', 'fake-provider');
  await lock.acquire({ blocking: true, timeoutMs: 5000 });
  const upnum = await zk.storeImageUpload('fake-image', '0000000001', 'fake-provider', { ...upload, id: null, state: 'uploading' });
  // while the lock is held the record is an upload in progress and stays
  await sleep(800);
  assert.ok(await zk.getImageUpload('fake-image', '0000000001', 'fake-provider', upnum));
  await lock.release();
  await waitFor('stale upload record removed', async () =>
    (await zk.getImageUpload('fake-image', '0000000001', 'fake-provider', upnum)) === null);
  assert.ok(await zk.getImageUpload('fake-image', '0000000001', 'fake-provider', upload.id ?? ''));
}));

test('image-build request: a second ready build, the request removed; paused images are never built', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image' }, { name: 'paused-image', pause: true }] });
  await env.builder();
  const zk = await env.zk();
  await readyBuild(zk, 'fake-image', '0000000001');
  await zk.submitBuildRequest('fake-image');
  await zk.submitBuildRequest('paused-image');
  await readyBuild(zk, 'fake-image', '0000000002');
  await waitFor('request removed', async () => !(await zk.hasBuildRequest('fake-image')));
  await sleep(500);
  assert.deepEqual(await zk.getBuildIds('paused-image'), []);
  assert.equal(await zk.hasBuildRequest('paused-image'), true);
}));

test('provider-level pause: the image is built but not uploaded', () => withEnv(async (env) => {
  env.writeConfig({
    diskimages: [{ name: 'fake-image' }],
    providers: [{ name: 'fake-provider', diskimages: [{ name: 'fake-image', pause: true }] }],
  });
  await env.builder();
  const zk = await env.zk();
  await readyBuild(zk, 'fake-image', '0000000001');
  await sleep(800);
  assert.deepEqual(await zk.getBuildProviders('fake-image', '0000000001'), []);
}));

test('dib-image-delete and image-delete marks are carried out by the cleanup worker', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image' }] });
  await env.builder();
  const zk = await env.zk();
  const up1 = await readyUpload(zk, 'fake-image', '0000000001', 'fake-provider');
  await zk.submitBuildRequest('fake-image');
  await readyUpload(zk, 'fake-image', '0000000002', 'fake-provider');

  // image-delete: the upload of build 2 is marked, then deleted in the cloud and in ZooKeeper
  const up2 = (await zk.getImageUploads('fake-image', '0000000002', 'fake-provider', ['ready']))[0];
  assert.ok(up2?.id);
  await zk.storeImageUpload('fake-image', '0000000002', 'fake-provider', { ...up2, state: 'deleting' }, up2.id);
  await waitFor('marked upload removed', async () =>
    (await zk.getImageUpload('fake-image', '0000000002', 'fake-provider', up2.id ?? '')) === null);
  const cloud = await env.cloud();
  assert.equal((await cloud.listImages()).some((i) => i.id === up2.external_id), false);

  // dib-image-delete: build 1 is marked; its upload, files and znode go
  const b1 = await zk.getBuild('fake-image', '0000000001');
  assert.ok(b1);
  await zk.storeBuild('fake-image', { ...b1, state: 'deleting' }, '0000000001');
  await waitFor('build 1 removed', async () => (await zk.getBuild('fake-image', '0000000001')) === null);
  assert.equal(existsSync(join(env.imagesDir, 'fake-image-0000000001.qcow2')), false);
  assert.equal((await cloud.listImages()).some((i) => i.id === up1.external_id), false);
  await cloud.stop();
}));
