// nodepool-builder against a real ZooKeeper, the fake disk-image-create and the fake cloud:
// Nodepool's test_builder.py scenarios (§9.2) and the bad-input cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { componentVersion, paths } from '@nodepool-ts/core/zk';
import { newImageUpload } from '@nodepool-ts/core/model';
import { BUILDER_ID_FILE, Builder, type BuildFinished } from '../src/index.js';
import { FAKE_DIB, TestEnv, expireSession, failingUploads, sleep, waitFor } from './helpers.js';

const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function withEnv(fn: (env: TestEnv) => Promise<void>): Promise<void> {
  const env = new TestEnv();
  try {
    await fn(env);
  } finally {
    await env.cleanup();
  }
}

test('start/stop, builder_id.txt holds a UUID4 reused across restarts', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image' }] });
  const b = await env.builder();
  const id = readFileSync(join(env.imagesDir, BUILDER_ID_FILE), 'utf8');
  assert.match(id, UUID4);
  assert.equal(b.builderId, id);
  await b.stop();
  const b2 = await env.builder();
  assert.equal(b2.builderId, id);
  await b2.stop();
}));

test("registers Nodepool 6.1+'s builder component, again after a session expiry, and removes it at stop", () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image' }] });
  const b = await env.builder();
  const zk = await env.zk();
  const root = paths.componentsOf('builder');
  const registered = async (): Promise<{ name: string; owner: string; content: unknown } | null> => {
    const names = await zk.getChildren(root);
    if (names.length !== 1 || names[0] === undefined) return null;
    const got = await zk.getDataStat(paths.child(root, names[0]));
    return got && { name: names[0], owner: got.stat.ephemeralOwner.toString('hex'), content: JSON.parse(got.data.toString()) };
  };
  const first = await waitFor('builder component', registered, 10_000);
  assert.ok(first.name.startsWith(b.hostname) && /\d{10}$/.test(first.name), first.name);
  assert.deepEqual(first.content, { hostname: b.hostname, kind: 'builder', model_api: 0, state: 'running', version: componentVersion() });
  assert.equal(first.owner, b.zk.sessionCredentials().id.toString('hex'));
  await expireSession(b.zk);
  await waitFor('registered in the new session', async () => {
    const r = await registered();
    return r !== null && r.owner === b.zk.sessionCredentials().id.toString('hex');
  }, 20_000);
  await b.stop();
  assert.deepEqual(await zk.getChildren(root), []);
}));

test('a stop while starting (a signal at start-up): start gives up, no worker runs, the session is closed', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image' }] });
  for (const when of ['during the config load', 'once connected']) {
    const b = new Builder({ configFile: env.configFile, dibCmd: FAKE_DIB, buildIntervalMs: 100, uploadIntervalMs: 100, connectTimeoutMs: 10_000 });
    const starting = b.start().then(() => 'started', (err: Error) => err.message);
    if (when === 'once connected') await waitFor('session', () => b.describe().zk === 'connected', 20_000, 1);
    await b.stop();
    const outcome = await starting;
    if (when === 'during the config load') assert.equal(outcome, 'stopped while starting');
    else assert.ok(outcome === 'started' || outcome === 'stopped while starting', outcome);
    const d = b.describe() as { state: string; zk: string | null; workers: { running: boolean }[] };
    assert.equal(d.state, 'stopped', when);
    assert.ok(d.workers.every((w) => !w.running), `${when}: no worker left running`);
    assert.notEqual(d.zk, 'connected', `${when}: session closed`);
  }
}));

test('startup fails without images-dir or ZooKeeper servers', () => withEnv(async (env) => {
  const file = env.writeConfig({ diskimages: [{ name: 'fake-image' }] });
  const text = readFileSync(file, 'utf8').replace(/^images-dir:.*$/m, '');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(file, text);
  await assert.rejects(env.builder(), /No images-dir specified in config/);
  writeFileSync(file, text.replace(/zookeeper-servers:[\s\S]*?chroot: \S+\n/, '') + `images-dir: ${env.imagesDir}\n`);
  await assert.rejects(env.builder(), /No ZooKeeper servers specified in config/);
}));

test('a build becomes ready with Nodepool fields and files, then is uploaded to the fake cloud', () => withEnv(async (env) => {
  env.writeConfig({
    diskimages: [{ name: 'fake-image', release: 21, username: 'jenkins', envVars: { FAKE_DIB_EXPECT_DIB_RELEASE: '21' } }],
    providers: [{ name: 'fake-provider', diskimages: [{ name: 'fake-image', meta: { key: 'value' } }] }],
  });
  const finished: BuildFinished[] = [];
  const b = await env.builder({
    metrics: { onBuildFinished: (e) => finished.push(e), onUploadFinished: () => undefined },
  });
  const zk = await env.zk();
  const build = await waitFor('ready build', async () => (await zk.getBuilds('fake-image', ['ready']))[0]);
  assert.equal(build.id, '0000000001');
  assert.equal(build.builder, b.hostname);
  assert.equal(build.builder_id, b.builderId);
  assert.deepEqual(build.formats, ['qcow2']);
  assert.equal(build.username, 'jenkins');
  const raw = JSON.parse((await zk.getData(paths.build('fake-image', '0000000001')))?.toString() ?? '{}') as Record<string, unknown>;
  assert.deepEqual(Object.keys(raw), ['state', 'state_time', 'builder', 'builder_id', 'formats', 'username']);
  for (const f of ['fake-image-0000000001.qcow2', 'fake-image-0000000001.qcow2.md5', 'fake-image-0000000001.qcow2.sha256']) {
    assert.ok(existsSync(join(env.imagesDir, f)), f);
  }
  assert.ok(existsSync(join(env.imagesDir, 'fake-image-0000000001.d')));
  const log = readFileSync(join(env.logDir, 'fake-image-0000000001.log'), 'utf8');
  assert.match(log, /-x -t qcow2|qemu-img-options: compat=0\.10/);
  assert.match(log, /env: DIB_IMAGE_NAME=fake-image/);
  assert.match(log, new RegExp(`env: DIB_IMAGE_FILENAME=${join(env.imagesDir, 'fake-image-0000000001')}`));
  assert.match(log, /Exit code: 0\n$/);

  const upload = await waitFor('ready upload', async () =>
    (await zk.getImageUploads('fake-image', '0000000001', 'fake-provider', ['ready']))[0]);
  assert.equal(upload.id, '0000000001');
  assert.equal(upload.format, 'qcow2');
  assert.equal(upload.username, 'jenkins');
  assert.match(upload.external_name ?? '', /^fake-image-\d+$/);
  const cloud = await env.cloud();
  const img = (await cloud.listImages()).find((i) => i.id === upload.external_id);
  assert.ok(img, 'image in the fake cloud');
  assert.equal(img.name, upload.external_name);
  assert.equal(img.metadata.nodepool_build_id, '0000000001');
  assert.equal(img.metadata.nodepool_upload_id, '0000000001');
  assert.equal(img.metadata.key, 'value');
  assert.equal(img.metadata.disk_format, 'qcow2');
  assert.equal(img.checksum, readFileSync(join(env.imagesDir, 'fake-image-0000000001.qcow2.md5'), 'utf8').slice(0, 32));
  await cloud.stop();

  const progress = await zk.getBuildProgress('fake-image', '0000000001');
  assert.equal(progress?.state, 'ready');
  assert.equal(progress?.log, join(env.logDir, 'fake-image-0000000001.log'));
  assert.equal(finished.length, 1);
  assert.equal(finished[0]?.rc, 0);
  assert.ok((finished[0]?.sizes.qcow2 ?? 0) > 0);
  // no second build while the first is fresh
  await sleep(500);
  assert.deepEqual(await zk.getBuildIds('fake-image'), ['0000000001']);
}));
