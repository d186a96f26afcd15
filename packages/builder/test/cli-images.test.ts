// The `nodepool` image commands that depend on the builder: `image-build --wait` (live progress
// from the build's progress znode, then the upload states; non-zero exit on failure) and
// `image-upload <provider> <image> [--wait]`, against a builder running the fake DIB.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '@nodepool-ts/cli';
import { TestEnv, waitFor } from './helpers.js';

async function withEnv(fn: (env: TestEnv) => Promise<void>): Promise<void> {
  const env = new TestEnv();
  try {
    await fn(env);
  } finally {
    await env.cleanup();
  }
}

async function nodepool(env: TestEnv, ...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(['-c', env.configFile, ...argv], {
    stdout: (t) => { stdout += t; },
    stderr: (t) => { stderr += t; },
  });
  return { code, stdout, stderr };
}

test('image-build --wait shows the build step by step, then the uploads; exit 0', () => withEnv(async (env) => {
  env.writeConfig({
    diskimages: [{ name: 'fake-image', envVars: { FAKE_DIB_SLEEP: '1' } }],
    providers: [{ name: 'fake-provider' }, { name: 'fake-provider2' }],
  });
  await env.builder();
  const zk = await env.zk();
  // the first (scheduled) build and its uploads, so the request makes build 2
  await waitFor('first uploads', async () => (await zk.getImageUploads('fake-image', '0000000001', 'fake-provider2', ['ready'])).length > 0);
  const r = await nodepool(env, 'image-build', 'fake-image', '--wait');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines[0], 'Build of fake-image requested; waiting for a builder to start it');
  assert.match(r.stdout, /^\[00:00:0\d\] build fake-image-0000000002 started on \S+; log \S+:\S+\/logs\/fake-image-0000000002\.log$/m);
  assert.match(r.stdout, /^\[\d\d:\d\d:\d\d\] install\.d\/99-fake-sleep$/m);
  assert.match(r.stdout, /^\[\d\d:\d\d:\d\d\] build fake-image-0000000002 ready \(qcow2\) after \ds$/m);
  assert.match(r.stdout, /^waiting for uploads to fake-provider, fake-provider2$/m);
  assert.match(r.stdout, /^\[\d\d:\d\d:\d\d\] fake-provider: upload 0000000001 ready as fake-image-\d+ \([0-9a-f-]{36}\)$/m);
  assert.match(r.stdout, /^\[\d\d:\d\d:\d\d\] fake-provider2: upload 0000000001 ready as fake-image-\d+ /m);
  assert.equal(r.stderr, '');

  const j = await nodepool(env, 'image-build', 'fake-image', '--wait', '--json');
  assert.equal(j.code, 0, j.stderr);
  const out = JSON.parse(j.stdout) as { build_id: string; state: string; uploads: { provider: string; state: string }[] };
  assert.equal(out.build_id, '0000000003');
  assert.equal(out.state, 'ready');
  assert.deepEqual(out.uploads.map((u) => [u.provider, u.state]), [['fake-provider', 'ready'], ['fake-provider2', 'ready']]);
}));

test('image-build --wait of a failing build: reason and log, exit 1; unknown image refused', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'bad-image', envVars: { FAKE_DIB_FAIL_SCRIPT: 'install.d/60-oops' } }] });
  // the scheduled build fails (and is retried) too; the waiter follows the first build after its request
  await env.builder({ cleanupIntervalMs: 60_000 });
  const zk = await env.zk();
  await waitFor('first failed build', async () => (await zk.getBuild('bad-image', '0000000001'))?.state === 'failed');
  const r = await nodepool(env, 'image-build', 'bad-image', '--wait');
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /build bad-image-\d+ FAILED after \ds: install\.d\/60-oops failed \(disk-image-create exit code 1\): 60-oops: simulated failure inside the image$/m);
  assert.match(r.stdout, /^build log: \S+:\S+\/logs\/bad-image-\d+\.log$/m);

  const u = await nodepool(env, 'image-build', 'no-such-image', '--wait');
  assert.equal(u.code, 1);
  assert.match(u.stderr, /Trying to build a non disk-image-builder image: no-such-image/);
}));

test('image-upload uploads the newest build again; errors for unknown provider, image, no build', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image' }, { name: 'never-built', pause: true }] });
  await env.builder();
  const zk = await env.zk();
  const first = await waitFor('first upload', async () => (await zk.getImageUploads('fake-image', '0000000001', 'fake-provider', ['ready']))[0]);
  const r = await nodepool(env, 'image-upload', 'fake-provider', 'fake-image', '--wait');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^Upload of fake-image-0000000001 to fake-provider requested$/m);
  assert.match(r.stdout, /^\[\d\d:\d\d:\d\d\] fake-provider: upload 0000000002 ready as fake-image-\d+ /m);
  const ids = (await zk.getImageUploads('fake-image', '0000000001', 'fake-provider', ['ready'])).map((x) => x.id).sort();
  assert.deepEqual(ids, [first.id, '0000000002']);

  const plain = await nodepool(env, 'image-upload', 'fake-provider', 'fake-image', '--json');
  assert.equal(plain.code, 0);
  assert.deepEqual(JSON.parse(plain.stdout), { image: 'fake-image', provider: 'fake-provider', build_id: '0000000001', requested: true });
  await waitFor('request honoured', async () => !(await zk.hasUploadRequest('fake-image', 'fake-provider')));

  const badProvider = await nodepool(env, 'image-upload', 'nope', 'fake-image');
  assert.equal(badProvider.code, 1);
  assert.match(badProvider.stderr, /Provider nope not found/);
  const badImage = await nodepool(env, 'image-upload', 'fake-provider', 'nope');
  assert.match(badImage.stderr, /Image nope is not a diskimage of provider fake-provider/);
  const noBuild = await nodepool(env, 'image-upload', 'fake-provider', 'never-built');
  assert.equal(noBuild.code, 1);
  assert.match(noBuild.stderr, /No ready build of image never-built to upload/);
  const usage = await nodepool(env, 'image-upload', 'fake-provider');
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /the following arguments are required: image/);
}));

test('image-pause stops builds (requests wait), dib-image-list and image-status show it; image-unpause builds', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image' }, { name: 'other-image' }], providers: [{ name: 'fake-provider' }] });
  const zk = await env.zk();
  // paused before any builder runs: never built while paused; idempotent; Nodepool's znode
  for (let i = 0; i < 2; i++) {
    const r = await nodepool(env, 'image-pause', 'fake-image');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
  }
  assert.ok(await zk.exists('/nodepool/images/fake-image/pause'));
  const typo = await nodepool(env, 'image-pause', 'fake-imag');
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, /Image fake-imag is neither a configured diskimage nor known to ZooKeeper/);
  assert.deepEqual(await zk.getImageNames(), ['fake-image'], 'a typo creates nothing');

  await env.builder();
  await waitFor('the other image built', async () => (await zk.getBuilds('other-image', ['ready'])).length === 1);
  // a build request of a paused image is queued (with a warning) and waits; --wait refuses
  const req = await nodepool(env, 'image-build', 'fake-image');
  assert.equal(req.code, 0, req.stderr);
  assert.match(req.stderr, /WARNING nodepool\.cmd\.nodepoolcmd: Image fake-image is paused: the build starts when it is unpaused/);
  const wait = await nodepool(env, 'image-build', 'fake-image', '--wait');
  assert.equal(wait.code, 1);
  assert.match(wait.stderr, /Image fake-image is paused \(nodepool image-unpause fake-image\); not waiting for a build/);

  const status = await nodepool(env, 'image-status');
  assert.equal(status.code, 0, status.stderr);
  const lines = status.stdout.trimEnd().split('\n');
  assert.equal(lines[1], '| Image       | Paused | Build Request | Build Request Age |');
  assert.match(lines[3] ?? '', /^\| fake-image  \| True   \| pending       \| 00:00:00:0\d       \|$/);
  assert.equal(lines[4], '| other-image | False  |               |                   |');
  const json = JSON.parse((await nodepool(env, 'image-status', '--json')).stdout) as Record<string, unknown>[];
  assert.equal(json.length, 2);
  assert.deepEqual({ ...json[0], build_request_age: typeof json[0]?.build_request_age },
    { image: 'fake-image', paused: true, build_request: 'pending', build_request_age: 'number' });
  assert.deepEqual(json[1], { image: 'other-image', paused: false, build_request: null, build_request_age: null });

  // builds of a paused image are listed as `paused`
  assert.equal((await nodepool(env, 'image-pause', 'other-image')).code, 0);
  const dib = JSON.parse((await nodepool(env, 'dib-image-list', '--json')).stdout) as { image: string; state: string }[];
  assert.deepEqual(dib.map((b) => [b.image, b.state]), [['other-image', 'paused']]);
  // many builder cycles later the paused image is still unbuilt and its request still there
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(await zk.getBuildIds('fake-image'), []);
  assert.ok(await zk.hasBuildRequest('fake-image'));

  for (const image of ['fake-image', 'other-image']) {
    for (let i = 0; i < 2; i++) assert.equal((await nodepool(env, 'image-unpause', image)).code, 0);
  }
  assert.equal(await zk.isImagePaused('fake-image'), false);
  await waitFor('the unpaused image built', async () => (await zk.getBuilds('fake-image', ['ready'])).length === 1);
  await waitFor('its request taken', async () => !(await zk.hasBuildRequest('fake-image')));
  // (the scheduled build of a never-built image and the requested one: one or two builds)
  await waitFor('no build running', async () => (await zk.getBuilds('fake-image', ['building'])).length === 0);
  const after = JSON.parse((await nodepool(env, 'dib-image-list', '--json')).stdout) as { image: string; state: string }[];
  assert.deepEqual([...new Set(after.map((b) => `${b.image} ${b.state}`))], ['fake-image ready', 'other-image ready']);
}));

test('export-image-data / import-image-data restore the image data of a lost ZooKeeper; new builds number past it', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image' }], providers: [{ name: 'fake-provider' }] });
  const builder = await env.builder();
  const zk = await env.zk();
  await waitFor('a build uploaded', async () => (await zk.getImageUploads('fake-image', '0000000001', 'fake-provider', ['ready'])).length > 0);
  await builder.stop();
  assert.equal((await nodepool(env, 'image-pause', 'fake-image')).code, 0);
  const dibBefore = (await nodepool(env, 'dib-image-list', '--json')).stdout;
  const imagesBefore = (await nodepool(env, 'image-list', '--json')).stdout;

  const file = join(env.dir, 'image-data.json');
  const exp = await nodepool(env, 'export-image-data', file);
  assert.equal(exp.code, 0, exp.stderr);
  assert.equal(exp.stdout, '');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const data = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  assert.deepEqual(Object.keys(data), [
    '/nodepool/images/fake-image/pause', '/nodepool/images/fake-image/builds/0000000001',
    '/nodepool/images/fake-image/builds/0000000001/providers/fake-provider/images/0000000001',
  ]);
  assert.match(readFileSync(file, 'utf8'), /^\{"\/nodepool\/images\/fake-image\/pause": "", /, "Python's json.dump layout");

  // ZooKeeper loses everything
  await zk.deleteRecursive('/nodepool/images');
  assert.equal((await nodepool(env, 'dib-image-list', '--json')).stdout.trim(), '[]');
  // a bad file imports nothing
  const bad = join(env.dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ ...data, '/nodepool/nodes/0000000001': '{}' }));
  const refused = await nodepool(env, 'import-image-data', bad);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /bad\.json: \/nodepool\/nodes\/0000000001: not an image build, upload or pause znode; nothing imported/);
  writeFileSync(bad, '{"truncated": ');
  const broken = await nodepool(env, 'import-image-data', bad);
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /Cannot read .*bad\.json: /);
  assert.deepEqual(await zk.getImageNames(), []);

  const imp = await nodepool(env, 'import-image-data', file, '--json');
  assert.equal(imp.code, 0, imp.stderr);
  assert.deepEqual(JSON.parse(imp.stdout), { path: file, znodes: 3 });
  assert.equal((await nodepool(env, 'dib-image-list', '--json')).stdout, dibBefore);
  assert.equal((await nodepool(env, 'image-list', '--json')).stdout, imagesBefore);
  assert.equal(await zk.isImagePaused('fake-image'), true);

  // the builder carries on from the restored data: the next build gets a new number
  assert.equal((await nodepool(env, 'image-unpause', 'fake-image')).code, 0);
  assert.equal((await nodepool(env, 'image-build', 'fake-image')).code, 0);
  await env.builder();
  await waitFor('a new build', async () => (await zk.getBuilds('fake-image', ['ready'])).length === 2);
  const ids = await zk.getBuildIds('fake-image');
  assert.equal(ids[0], '0000000001');
  assert.ok(Number(ids[1]) > 1, `new build ${ids[1]}`);
}));
