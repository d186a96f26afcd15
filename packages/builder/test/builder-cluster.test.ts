// The builder among others: two builders sharing ZooKeeper (§4.7), the launcher booting from
// the newest ready upload after an upload failure, forced uploads (`image-upload`), leaked cloud
// images, environment and secure-file env-vars, formats, the image-update cron.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Launcher } from '@nodepool-ts/launcher';
import { paths } from '@nodepool-ts/core/zk';
import { TestEnv, failingUploads, sleep, waitFor } from './helpers.js';

async function withEnv(fn: (env: TestEnv) => Promise<void>): Promise<void> {
  const env = new TestEnv();
  try {
    await fn(env);
  } finally {
    await env.cleanup();
  }
}

test('two builders on different hosts: one build per image, uploaded by the owner of the files only', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image', envVars: { FAKE_DIB_SLEEP: '0.5' } }] });
  const otherImages = join(env.dir, 'images-b');
  const configB = env.writeConfig({ diskimages: [{ name: 'fake-image', envVars: { FAKE_DIB_SLEEP: '0.5' } }] }, join(env.dir, 'b', 'nodepool.yaml'), otherImages);
  const a = await env.builder({ hostname: 'nb01' });
  const b = await env.builder({ hostname: 'nb02', configFile: configB });
  const zk = await env.zk();
  const upload = await waitFor('ready upload', async () => (await zk.getImageUploads('fake-image', '0000000001', 'fake-provider', ['ready']))[0]);
  await sleep(600);
  assert.deepEqual(await zk.getBuildIds('fake-image'), ['0000000001'], 'exactly one build');
  const build = await zk.getBuild('fake-image', '0000000001');
  const owner = build?.builder_id === a.builderId ? { dir: env.imagesDir, other: otherImages } : { dir: otherImages, other: env.imagesDir };
  assert.ok(build?.builder === 'nb01' || build?.builder === 'nb02');
  assert.ok(existsSync(join(owner.dir, 'fake-image-0000000001.qcow2')));
  assert.equal(readdirSync(owner.other).some((f) => f.startsWith('fake-image-')), false);
  assert.deepEqual(await zk.getUploadIds('fake-image', '0000000001', 'fake-provider'), [upload.id]);
  const cloud = await env.cloud();
  assert.equal((await cloud.listImages()).filter((i) => i.metadata.nodepool_build_id === '0000000001').length, 1);
  await cloud.stop();
  void b;
}));

test('a failed upload is recorded and retried; the launcher boots from the newest ready upload', () => withEnv(async (env) => {
  env.writeConfig({
    diskimages: [{ name: 'fake-image' }],
    labels: [{ name: 'fake-label', minReady: 1 }],
    providers: [{ name: 'fake-provider', labels: [{ name: 'fake-label', diskimage: 'fake-image' }] }],
  });
  await env.builder({ providerFactory: failingUploads({ left: 1 }) });
  const zk = await env.zk();
  const ready = await waitFor('ready upload', async () => (await zk.getImageUploads('fake-image', '0000000001', 'fake-provider', ['ready']))[0], 30_000);
  // started once the image exists: its min-ready pass runs at start (it has no periodic one)
  const launcher = new Launcher({ configFile: env.configFile, hostname: 'nl01', watchIntervalMs: 0, webapp: false });
  await launcher.start();
  try {
    const failed = await zk.getImageUploads('fake-image', '0000000001', 'fake-provider', ['failed']);
    assert.equal(failed.length, 1);
    assert.equal(failed[0]?.external_id, null);
    const node = await waitFor('ready node', async () => (await zk.getNodes()).find((n) => n.state === 'ready'), 30_000);
    assert.equal(node.image_id, paths.upload('fake-image', '0000000001', 'fake-provider', ready.id ?? ''));
  } finally {
    await launcher.stop();
  }
}));

test('image-upload request: the newest build is uploaded again and the request removed', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image' }] });
  await env.builder();
  const zk = await env.zk();
  const first = await waitFor('ready upload', async () => (await zk.getImageUploads('fake-image', '0000000001', 'fake-provider', ['ready']))[0]);
  await zk.submitUploadRequest('fake-image', 'fake-provider');
  const second = await waitFor('second upload', async () =>
    (await zk.getImageUploads('fake-image', '0000000001', 'fake-provider', ['ready'])).find((u) => u.id !== first.id));
  assert.notEqual(second.external_id, first.external_id);
  await waitFor('request removed', async () => !(await zk.hasUploadRequest('fake-image', 'fake-provider')));
  assert.deepEqual(await zk.getUploadRequests('fake-image'), []);
}));

test('leaked cloud images of this provider are deleted; foreign and known ones are kept', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image' }] });
  await env.builder();
  const zk = await env.zk();
  const upload = await waitFor('ready upload', async () => (await zk.getImageUploads('fake-image', '0000000001', 'fake-provider', ['ready']))[0]);
  const file = join(env.dir, 'leak.qcow2');
  writeFileSync(file, 'leaked');
  const cloud = await env.cloud();
  const leaked = await cloud.uploadImage({
    name: 'fake-image-1', file, format: 'qcow2',
    metadata: { nodepool_build_id: '0000000042', nodepool_upload_id: '0000000007', nodepool_provider_name: 'fake-provider' },
  });
  const foreign = await cloud.uploadImage({
    name: 'someone-else', file, format: 'qcow2', metadata: { nodepool_build_id: '0000000042', nodepool_upload_id: '0000000007' },
  });
  await waitFor('leaked image deleted', async () => !(await cloud.listImages()).some((i) => i.id === leaked.id));
  const left = (await cloud.listImages()).map((i) => i.id);
  assert.ok(left.includes(foreign.id), 'an image without our provider name is not ours');
  assert.ok(left.includes(upload.external_id ?? ''), 'a known upload stays');
  await cloud.stop();
}));

test('env-vars (secure file merged), DIB_RELEASE, ELEMENTS_PATH with our elements, PATH with DIB first', () => withEnv(async (env) => {
  env.writeConfig({
    diskimages: [{
      name: 'fake-image', release: 21,
      envVars: { FAKE_DIB_EXPECT_DIB_RELEASE: '21', FAKE_DIB_EXPECT_PUBLIC: 'yes', FAKE_DIB_EXPECT_SECRET: 's3cret', PUBLIC: 'yes', SECRET: 'overridden' },
    }],
    elementsDir: join(env.dir, 'my-elements'),
  });
  const secure = join(env.dir, 'secure.conf');
  writeFileSync(secure, 'diskimages:\n  - name: fake-image\n    env-vars:\n      SECRET: s3cret\n');
  const b = await env.builder({ secureFile: secure });
  const zk = await env.zk();
  await waitFor('ready build', async () => (await zk.getBuild('fake-image', '0000000001'))?.state === 'ready');
  const log = readFileSync(join(env.logDir, 'fake-image-0000000001.log'), 'utf8');
  assert.match(log, new RegExp(`env: ELEMENTS_PATH=${join(env.dir, 'my-elements')}:${b.shippedElementsDir ?? ''}\n`));
}));

test('formats: diskimage formats plus the provider format; image without providers builds its own formats only', () => withEnv(async (env) => {
  env.writeConfig({
    diskimages: [{ name: 'fake-image', formats: ['vhd'] }, { name: 'build-only', formats: ['tar'] }],
    providers: [{ name: 'fake-provider', diskimages: [{ name: 'fake-image' }] }],
  });
  await env.builder();
  const zk = await env.zk();
  const b = await waitFor('ready build', async () => { const x = await zk.getBuild('fake-image', '0000000001'); return x?.state === 'ready' ? x : null; });
  assert.deepEqual([...b.formats].sort(), ['qcow2', 'vhd']);
  assert.match((await zk.getData(paths.build('fake-image', '0000000001')))?.toString() ?? '', /"formats": "qcow2,vhd"/);
  const only = await waitFor('build-only', async () => { const x = await zk.getBuild('build-only', '0000000001'); return x?.state === 'ready' ? x : null; });
  assert.deepEqual(only.formats, ['tar']);
  assert.ok(existsSync(join(env.imagesDir, 'build-only-0000000001.tar')));
  await sleep(300);
  assert.deepEqual(await zk.getBuildProviders('build-only', '0000000001'), []);
}));

test('cron image-update asks for a build of every non-paused image not built since the tick', () => withEnv(async (env) => {
  env.writeConfig({
    diskimages: [{ name: 'fake-image' }, { name: 'paused', pause: true }],
    top: "cron:\n  image-update: '14 2 * * *'",
  });
  const b = await env.builder();
  assert.equal(b.describe().imageUpdateCron, '14 2 * * *');
  const zk = await env.zk();
  await waitFor('ready build', async () => (await zk.getBuild('fake-image', '0000000001'))?.state === 'ready');
  // a tick before the build finished: the image is rebuilt
  assert.deepEqual(await b.imageUpdateTick(new Date(Date.now() - 3600_000)), []);
  assert.deepEqual(await b.imageUpdateTick(new Date(Date.now() + 3600_000)), ['fake-image']);
  await waitFor('build 2', async () => (await zk.getBuild('fake-image', '0000000002'))?.state === 'ready');
  assert.equal(await zk.hasBuildRequest('paused'), false);
}));

test('delete-after-upload: once every provider has the build, its files go except keep-formats; the build stays ready', () => withEnv(async (env) => {
  env.writeConfig({
    diskimages: [{ name: 'fake-image', formats: ['vhd', 'raw'], deleteAfterUpload: true, keepFormats: ['raw'] }, { name: 'kept', formats: ['vhd'] }],
    providers: [{ name: 'fake-provider' }],
  });
  await env.builder();
  const zk = await env.zk();
  const file = (image: string, ext: string) => join(env.imagesDir, `${image}-0000000001.${ext}`);
  await waitFor('uploads ready', async () => (await zk.getImageUploads('fake-image', '0000000001', 'fake-provider', ['ready'])).length === 1
    && (await zk.getImageUploads('kept', '0000000001', 'fake-provider', ['ready'])).length === 1);
  // qcow2 (the provider's, uploaded) and vhd (no provider's) go; raw is kept
  await waitFor('files pruned', () => !existsSync(file('fake-image', 'qcow2')) && !existsSync(file('fake-image', 'vhd')), 10_000);
  assert.ok(existsSync(file('fake-image', 'raw')));
  assert.ok(!existsSync(`${file('fake-image', 'qcow2')}.md5`));
  // an image without the option keeps everything
  await sleep(700);
  assert.ok(existsSync(file('kept', 'qcow2')) && existsSync(file('kept', 'vhd')));
  assert.equal((await zk.getBuild('fake-image', '0000000001'))?.state, 'ready');
}));

test('post-upload-hook: a rejected image is deleted again and its upload failed; once the hook passes, the upload is ready', () => withEnv(async (env) => {
  const hook = join(env.dir, 'hooks', 'validate');
  const calls = join(env.dir, 'hook-calls');
  const pass = join(env.dir, 'hook-passes');
  mkdirSync(join(env.dir, 'hooks'));
  writeFileSync(hook, `#!/bin/sh\necho "$@" >> ${calls}\necho checked "$2"\n[ -e ${pass} ] || { echo "image $2 is bad" >&2; exit 3; }\n`, { mode: 0o755 });
  env.writeConfig({
    diskimages: [{ name: 'fake-image' }],
    // relative to the config file's directory
    providers: [{ name: 'fake-provider', extra: '    post-upload-hook: hooks/validate' }],
  });
  await env.builder();
  const zk = await env.zk();
  await waitFor('a rejected upload', async () => (await zk.getImageUploads('fake-image', '0000000001', 'fake-provider', ['failed'])).length > 0);
  const [first] = readFileSync(calls, 'utf8').trim().split('\n');
  const [provider, imageId, file] = (first ?? '').split(' ');
  assert.equal(provider, 'fake-provider');
  assert.equal(file, join(env.imagesDir, 'fake-image-0000000001.qcow2'));
  const cloud = await env.cloud();
  await waitFor('the rejected image deleted from the cloud', async () => !(await cloud.listImages()).some((i) => i.id === imageId));
  writeFileSync(pass, '');
  const ready = await waitFor('a ready upload', async () => (await zk.getImageUploads('fake-image', '0000000001', 'fake-provider', ['ready']))[0]);
  assert.ok((await cloud.listImages()).some((i) => i.id === ready.external_id));
  assert.equal(readFileSync(calls, 'utf8').trim().split('\n').at(-1), `fake-provider ${ready.external_id} ${file}`);
  await cloud.stop();
}));
