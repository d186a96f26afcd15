// The nodepool-builder command: Nodepool's flags, a foreground run with --fake that builds and
// uploads, a graceful stop on SIGINT (pid file removed), usage errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, TestEnv, waitFor } from './helpers.js';

const BIN = join(REPO, 'packages', 'builder', 'bin', 'nodepool-builder.js');

test('--help and usage errors', () => {
  const help = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^usage: nodepool-builder \[-h\] \[-c CONFIG\]/);
  for (const flag of ['-c CONFIG', '-s SECURE', '-l LOGCONFIG', '-p PIDFILE', '--build-workers', '--upload-workers', '--fake']) {
    assert.ok(help.stdout.includes(flag), flag);
  }
  const bad = spawnSync(process.execPath, [BIN, '--no-such-flag'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /nodepool-builder: error: Unknown option '--no-such-flag'/);
  const badN = spawnSync(process.execPath, [BIN, '--build-workers', 'two'], { encoding: 'utf8' });
  assert.equal(badN.status, 2);
  assert.match(badN.stderr, /argument --build-workers: invalid int value: 'two'/);
});

test('nodepool-builder -f --fake builds and uploads, stops on SIGINT and removes its pid file', async () => {
  const env = new TestEnv();
  try {
    env.writeConfig({ diskimages: [{ name: 'fake-image' }] });
    const pidfile = join(env.dir, 'run', 'nodepool-builder.pid');
    const child = spawn(process.execPath, [BIN, '-c', env.configFile, '-p', pidfile, '-f', '--fake', '--upload-workers', '2'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const zk = await env.zk();
      // the daemon's own 10 s intervals: the first build starts at once, its upload within a cycle
      await waitFor('ready upload', async () => (await zk.getImageUploads('fake-image', '0000000001', 'fake-provider', ['ready'])).length > 0, 40_000);
      assert.equal(readFileSync(pidfile, 'utf8').trim(), String(child.pid));
      assert.match(stderr, /"msg":"nodepool-builder started"/);
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await exited, 0, stderr);
    assert.equal(existsSync(pidfile), false);
    assert.match(stderr, /Received SIGINT; stopping/);
  } finally {
    await env.cleanup();
  }
});

test('nodepool-builder fails to start without images-dir', async () => {
  const env = new TestEnv();
  try {
    env.writeConfig({ diskimages: [] });
    const { writeFileSync } = await import('node:fs');
    writeFileSync(env.configFile, readFileSync(env.configFile, 'utf8').replace(/^images-dir:.*$/m, ''));
    const r = spawnSync(process.execPath, [BIN, '-c', env.configFile, '-p', join(env.dir, 'pid'), '-f'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /nodepool-builder: No images-dir specified in config\./);
  } finally {
    await env.cleanup();
  }
});
