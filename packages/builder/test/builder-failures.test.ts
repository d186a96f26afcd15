// Builds that go wrong: a failing DIB (rc 127), a missing element, a failing element script, a full
// disk, build-timeout, ZooKeeper session loss during a build, a build record removed under the
// builder. Each ends `failed` with its reason and log path, leaves nothing half-written behind,
// and the builder keeps serving the other images.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import type { BuildFinished } from '../src/index.js';
import { TestEnv, expireSession, waitFor } from './helpers.js';

async function withEnv(fn: (env: TestEnv) => Promise<void>): Promise<void> {
  const env = new TestEnv();
  try {
    await fn(env);
  } finally {
    await env.cleanup();
  }
}

async function finalBuild(zk: ZooKeeper, image: string, buildId: string, timeoutMs = 20_000) {
  return waitFor(`build ${image}-${buildId} finished`, async () => {
    const b = await zk.getBuild(image, buildId);
    return b !== null && (b.state === 'ready' || b.state === 'failed') ? b : null;
  }, timeoutMs);
}

function filesOf(dir: string, base: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f === base || f.startsWith(`${base}.`));
}

test('a failing disk-image-create: failed record with reason and log, rc 127 reported, cleaned up once a build succeeds', () => withEnv(async (env) => {
  env.writeConfig({ diskimages: [{ name: 'fake-image', envVars: { SHOULD_FAIL: 'true' } }] });
  const finished: BuildFinished[] = [];
  await env.builder({
    cleanupIntervalMs: 2000,
    metrics: { onBuildFinished: (e) => finished.push(e), onUploadFinished: () => undefined },
  });
  const zk = await env.zk();
  const b1 = await finalBuild(zk, 'fake-image', '0000000001');
  assert.equal(b1.state, 'failed');
  assert.deepEqual(b1.formats, []);
  const progress = await zk.getBuildProgress('fake-image', '0000000001');
  assert.equal(progress?.state, 'failed');
  assert.equal(progress?.rc, 127);
  assert.match(String(progress?.reason), /exited with code 127: Should fail is set/);
  assert.equal(progress?.log, join(env.logDir, 'fake-image-0000000001.log'));
  assert.match(readFileSync(join(env.logDir, 'fake-image-0000000001.log'), 'utf8'), /Exit code: 127\n$/);
  const failed = finished.find((f) => f.buildId === '0000000001');
  assert.equal(failed?.rc, 127);
  assert.equal(failed?.state, 'failed');
  assert.ok((failed?.durationMs ?? -1) >= 0);

  env.writeConfig({ diskimages: [{ name: 'fake-image' }] });
  await waitFor('a ready build', async () => (await zk.getBuilds('fake-image', ['ready'])).length > 0);
  await waitFor('failed build 0000000001 deleted', async () => (await zk.getBuild('fake-image', '0000000001')) === null);
}));

test('bad input: missing element, failing element script, full disk — each failed with reason; other images still built', () => withEnv(async (env) => {
  const elements = join(env.dir, 'elements');
  mkdirSync(join(elements, 'broken', 'extra-data.d'), { recursive: true });
  const script = join(elements, 'broken', 'extra-data.d', '10-explode');
  writeFileSync(script, '#!/bin/sh\necho "broken: cannot fetch the thing" >&2\nexit 3\n');
  chmodSync(script, 0o755);
  env.writeConfig({
    elementsDir: elements,
    diskimages: [
      { name: 'good-image' },
      { name: 'missing-element', elements: ['fedora', 'no-such-element'] },
      { name: 'bad-script', elements: ['fedora', 'broken'] },
      { name: 'in-image-failure', envVars: { FAKE_DIB_FAIL_SCRIPT: 'install.d/50-broken' } },
      { name: 'full-disk', envVars: { FAKE_DIB_ENOSPC: '1' } },
    ],
  });
  // cleanup would remove the failed records (and retries add more) before we look at them all
  await env.builder({ cleanupIntervalMs: 60_000 });
  const zk = await env.zk();
  const expectations: Record<string, RegExp> = {
    'missing-element': /Element 'no-such-element' not found/,
    'bad-script': /extra-data\.d\/10-explode of element broken failed \(disk-image-create exit code 3\): broken: cannot fetch the thing/,
    'in-image-failure': /install\.d\/50-broken failed \(disk-image-create exit code 1\)/,
    'full-disk': /No space left on device/,
  };
  for (const [image, re] of Object.entries(expectations)) {
    const b = await finalBuild(zk, image, '0000000001');
    assert.equal(b.state, 'failed', image);
    const p = await zk.getBuildProgress(image, '0000000001');
    assert.match(String(p?.reason), re, image);
    assert.equal(p?.log, join(env.logDir, `${image}-0000000001.log`));
    assert.deepEqual(filesOf(env.imagesDir, `${image}-0000000001`), [], `${image}: nothing half-written left`);
  }
  const good = await finalBuild(zk, 'good-image', '0000000001');
  assert.equal(good.state, 'ready');
  await waitFor('good image uploaded', async () => (await zk.getImageUploads('good-image', '0000000001', 'fake-provider', ['ready'])).length > 0);
  // no upload records for failed builds
  assert.deepEqual(await zk.getBuildProviders('full-disk', '0000000001'), []);
}));

test('a really full images-dir (tmpfs): the build fails and leaves no partial file', { skip: process.getuid?.() !== 0 ? 'needs root to mount a tmpfs' : false }, () => withEnv(async (env) => {
  const small = join(env.dir, 'small');
  mkdirSync(small, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', small]);
  try {
    env.writeConfig({ diskimages: [{ name: 'big-image', envVars: { FAKE_DIB_SIZE: String(4 * 1024 * 1024) } }] }, env.configFile, small);
    await env.builder({ cleanupIntervalMs: 60_000 });
    const zk = await env.zk();
    const b = await finalBuild(zk, 'big-image', '0000000001');
    assert.equal(b.state, 'failed');
    const p = await zk.getBuildProgress('big-image', '0000000001');
    assert.match(String(p?.reason), /No space left on device|could not write/);
    assert.deepEqual(filesOf(small, 'big-image-0000000001'), []);
  } finally {
    spawnSync('umount', ['-l', small]);
  }
}));

test('build-timeout: the process group is killed, the build fails without an exit line', () => withEnv(async (env) => {
  const marker = `${37 + Math.floor(Math.random() * 1000)}.25`;
  env.writeConfig({ diskimages: [{ name: 'slow-image', buildTimeout: 1, envVars: { FAKE_DIB_SLEEP: marker } }] });
  await env.builder({ cleanupIntervalMs: 60_000 });
  const zk = await env.zk();
  const started = Date.now();
  const b = await finalBuild(zk, 'slow-image', '0000000001');
  assert.equal(b.state, 'failed');
  assert.ok(Date.now() - started < 25_000, 'killed at the timeout, not after the sleep');
  const p = await zk.getBuildProgress('slow-image', '0000000001');
  assert.match(String(p?.reason), /build-timeout of 1s exceeded during install\.d\/99-fake-sleep/);
  const log = readFileSync(join(env.logDir, 'slow-image-0000000001.log'), 'utf8');
  assert.doesNotMatch(log, /Exit code:/);
  // the sleeping grandchild went with its process group
  await waitFor('sleep gone', () => spawnSync('pgrep', ['-f', `sleep ${marker}`]).status === 1, 5000);
}));

test('ZooKeeper session lost during a build: FAILED and the local files are removed', () => withEnv(async (env) => {
  // the build waits inside DIB until the session is gone, however long expiring it takes
  const go = join(env.dir, 'go');
  env.writeConfig({ diskimages: [{ name: 'fake-image', envVars: { FAKE_DIB_WAIT_FOR: go } }] });
  const finished: BuildFinished[] = [];
  const b = await env.builder({ metrics: { onBuildFinished: (e) => finished.push(e), onUploadFinished: () => undefined } });
  const zk = await env.zk();
  await waitFor('building', async () => (await zk.getBuild('fake-image', '0000000001'))?.state === 'building');
  await expireSession(b.zk);
  writeFileSync(go, '');
  const first = await waitFor('build 1 finished', () => finished.find((f) => f.buildId === '0000000001'));
  assert.equal(first.state, 'failed');
  assert.match(String(first.reason), /session lost/);
  assert.deepEqual(filesOf(env.imagesDir, 'fake-image-0000000001'), []);
  // the builder carries on in its new session; the failed record is cleaned up
  await waitFor('a ready build', async () => (await zk.getBuilds('fake-image', ['ready'])).length > 0);
  await waitFor('failed build removed', async () => (await zk.getBuild('fake-image', '0000000001')) === null);
}));

test('the build record removed during the build: the final write fails and the files are removed', () => withEnv(async (env) => {
  const go = join(env.dir, 'go');
  env.writeConfig({ diskimages: [{ name: 'fake-image', envVars: { FAKE_DIB_WAIT_FOR: go } }] });
  const finished: BuildFinished[] = [];
  await env.builder({ buildIntervalMs: 60_000, metrics: { onBuildFinished: (e) => finished.push(e), onUploadFinished: () => undefined } });
  const zk = await env.zk();
  await waitFor('building', async () => (await zk.getBuild('fake-image', '0000000001'))?.state === 'building');
  await zk.deleteRecursive('/nodepool/images/fake-image/builds/0000000001');
  writeFileSync(go, '');
  await waitFor('build finished', () => finished.length > 0);
  assert.equal(await zk.getBuild('fake-image', '0000000001'), null);
  assert.deepEqual(filesOf(env.imagesDir, 'fake-image-0000000001'), []);
}));
