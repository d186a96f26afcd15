// Commands that change ZooKeeper (image-build, image-delete, dib-image-delete, delete, hold,
// erase), config-validate, and the failure paths: messages and exit codes as Nodepool's.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newImageBuild, newImageUpload, newNode } from '@nodepool-ts/core/model';
import type { ImageBuild, ImageUpload, Node } from '@nodepool-ts/core/model';
import { paths } from '@nodepool-ts/core/zk';
import { makeFixture, runCli } from './helpers.js';
import type { Fixture } from './helpers.js';
import { MAIN_HELP } from '../src/help.js';

const NOW = 1795779600;

async function seedNode(fx: Fixture, fields: Partial<Node> = {}): Promise<Node> {
  const node = newNode({
    state: 'ready', state_time: NOW - 30, provider: 'fake-provider', pool: 'main', type: ['fake-label'],
    external_id: 'srv-1', public_ipv4: '203.0.113.5', public_ipv6: '', az: 'az1', launcher: 'nl-1-PoolWorker.fake-provider-main',
    ...fields,
  });
  await fx.zk.storeNode(node);
  return node;
}

// Builds and uploads with given ids (Nodepool's store* with an id only overwrites existing znodes)
async function seedBuild(fx: Fixture, id: string, build: ImageBuild): Promise<void> {
  await fx.zk.mkdirp(paths.build('fake-dib-image', id));
  await fx.zk.storeBuild('fake-dib-image', build, id);
}

async function seedUpload(fx: Fixture, buildId: string, provider: string, id: string, upload: ImageUpload): Promise<void> {
  await fx.zk.mkdirp(paths.upload('fake-dib-image', buildId, provider, id));
  await fx.zk.storeImageUpload('fake-dib-image', buildId, provider, upload, id);
}

/** The 9-column list table for one row, built independently of the formatter. */
function oneRowList(cells: string[]): string {
  const header = ['ID', 'Provider', 'Label', 'Server ID', 'Public IPv4', 'IPv6', 'State', 'Age', 'Locked'];
  const widths = header.map((h, i) => Math.max(h.length, (cells[i] ?? '').length));
  const rule = '+' + widths.map((w) => '-'.repeat(w + 2)).join('+') + '+';
  const line = (vals: string[]) => '| ' + vals.map((v, i) => v.padEnd(widths[i] ?? 0)).join(' | ') + ' |';
  return [rule, line(header), rule, line(cells), rule, ''].join('\n');
}

describe('commands', () => {
  let fx: Fixture;
  const cfg = () => ['-c', fx.configFile];
  before(async () => { fx = await makeFixture(); });
  after(async () => { await fx.cleanup(); });

  test('image-build: unknown image, paused image, then a real request', async () => {
    const unknown = await runCli([...cfg(), 'image-build', 'no-such-image']);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stdout, '');
    assert.equal(unknown.stderr, 'nodepool: Trying to build a non disk-image-builder image: no-such-image\n');
    const paused = await runCli([...cfg(), 'image-build', 'paused-image']);
    assert.equal(paused.code, 1);
    assert.equal(paused.stderr, 'nodepool: Skipping build request for image paused-image; paused\n');
    assert.equal(await fx.zk.hasBuildRequest('paused-image'), false);
    const ok = await runCli([...cfg(), 'image-build', 'fake-dib-image']);
    assert.deepEqual(ok, { code: 0, stdout: '', stderr: '' });
    assert.equal(await fx.zk.hasBuildRequest('fake-dib-image'), true);
    assert.equal(await fx.zk.exists(paths.imageBuildRequest('fake-dib-image')), true);
  });

  test('image-build --wait is wired to the builder side\'s waiter (exercised with a builder in packages/builder/test/cli-images.test.ts)', async () => {
    // without a builder the waiter waits (as it should), so it is not run here
    const mod = await import('../src/commands/image-build-wait.js') as { waitForImageBuild?: unknown };
    assert.equal(typeof mod.waitForImageBuild, 'function');
  });

  test('image-delete: not found, in progress, then marked deleting', async () => {
    const args = ['--provider', 'fake-provider', '--image', 'fake-dib-image', '--build-id', '0000000001', '--upload-id', '0000000001'];
    const missing = await runCli([...cfg(), 'image-delete', ...args]);
    assert.deepEqual(missing, { code: 0, stdout: 'Image upload not found\n', stderr: '' });
    await seedBuild(fx, '0000000001', newImageBuild({ state: 'ready', state_time: NOW, formats: ['qcow2'] }));
    const upload = newImageUpload({ state: 'uploading', state_time: NOW, external_id: 'img-1', external_name: 'fake-dib-image-1' });
    await seedUpload(fx, '0000000001', 'fake-provider', '0000000001', upload);
    const busy = await runCli([...cfg(), 'image-delete', ...args]);
    assert.deepEqual(busy, { code: 0, stdout: 'Cannot delete because image upload in progress\n', stderr: '' });
    upload.state = 'ready';
    await fx.zk.storeImageUpload('fake-dib-image', '0000000001', 'fake-provider', upload, '0000000001');
    const ok = await runCli([...cfg(), 'image-delete', ...args]);
    assert.deepEqual(ok, { code: 0, stdout: '', stderr: '' });
    const after = await fx.zk.getImageUpload('fake-dib-image', '0000000001', 'fake-provider', '0000000001');
    assert.equal(after?.state, 'deleting');
    assert.equal(after?.external_id, 'img-1');
  });

  test('dib-image-delete: split at the last dash, not found, in progress, deleting', async () => {
    const missing = await runCli([...cfg(), 'dib-image-delete', 'fake-dib-image-0000000009']);
    assert.deepEqual(missing, { code: 0, stdout: 'Build fake-dib-image-0000000009 not found\n', stderr: '' });
    const garbage = await runCli([...cfg(), 'dib-image-delete', 'nodash']);
    assert.equal(garbage.stdout, 'Build nodash not found\n');
    await seedBuild(fx, '0000000002', newImageBuild({ state: 'building', state_time: NOW }));
    const busy = await runCli([...cfg(), 'dib-image-delete', 'fake-dib-image-0000000002']);
    assert.deepEqual(busy, { code: 0, stdout: 'Cannot delete a build in progress\n', stderr: '' });
    const ok = await runCli([...cfg(), 'dib-image-delete', 'fake-dib-image-0000000001']);
    assert.deepEqual(ok, { code: 0, stdout: '', stderr: '' });
    assert.equal((await fx.zk.getBuild('fake-dib-image', '0000000001'))?.state, 'deleting');
    const j = await runCli([...cfg(), 'dib-image-delete', 'fake-dib-image-0000000009', '--json']);
    assert.deepEqual(JSON.parse(j.stdout), { message: 'Build fake-dib-image-0000000009 not found' });
  });

  test('delete: not found, then deleting and the one-row list', async () => {
    const missing = await runCli([...cfg(), 'delete', '0000009999']);
    assert.deepEqual(missing, { code: 0, stdout: 'Node id 0000009999 not found\n', stderr: '' });
    const node = await seedNode(fx);
    const id = node.id ?? '';
    const r = await runCli([...cfg(), 'delete', id], { now: NOW });
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    assert.equal(r.stdout, oneRowList([id, 'fake-provider', 'fake-label', 'srv-1', '203.0.113.5', '', 'deleting', '00:00:00:00', 'unlocked']));
    const stored = await fx.zk.getNode(id);
    assert.equal(stored?.state, 'deleting');
    assert.equal(stored?.state_time, NOW);
    // the lock was released
    assert.deepEqual(await fx.zk.getChildren(paths.nodeLock(id)), []);
  });

  test('delete: a node locked elsewhere times out after 5 s with exit 1', async () => {
    const node = await seedNode(fx);
    const id = node.id ?? '';
    assert.equal(await fx.zk.lockNode(node, { blocking: false }), true);
    try {
      const started = Date.now();
      const r = await runCli([...cfg(), 'delete', id]);
      const took = Date.now() - started;
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`^nodepool: Timeout trying to lock node ${id}`));
      assert.ok(took >= 4500 && took < 9000, `took ${took} ms`);
      assert.equal((await fx.zk.getNode(id))?.state, 'ready');
    } finally {
      await fx.zk.unlockNode(node);
    }
  });

  test('delete: a metastatic backing node (persistent lock) names the nodes to delete instead', async () => {
    const backing = await seedNode(fx, { state: 'in-use' });
    const id = backing.id ?? '';
    const slot = await seedNode(fx, {
      provider: 'meta-provider', type: ['small'],
      extra: { driver_data: { backing_node: id, slot: 0, node: '' } },
    });
    assert.equal(await fx.zk.lockNodePersistent(id, 'NodePool:metastatic:meta-provider', { blocking: false }), true);
    try {
      const r = await runCli([...cfg(), 'delete', id]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `nodepool: Timeout trying to lock node ${id} (locked by another process for more than 5s): `
        + `it is a backing node of metastatic provider meta-provider, serving node(s) ${slot.id ?? ''}; delete those `
        + 'and the launcher releases it once idle\n');
      assert.equal((await fx.zk.getNode(id))?.state, 'in-use');
    } finally {
      await fx.zk.forceUnlockNode(id, 'NodePool:metastatic:meta-provider');
    }
  });

  test('delete --now removes the node in the foreground', async () => {
    const node = await seedNode(fx, { external_id: 'no-such-server' });
    const id = node.id ?? '';
    const r = await runCli([...cfg(), 'delete', id, '--now']);
    assert.equal(r.code, 0, r.stderr);
    // like Nodepool: the list of that id afterwards is empty
    const rule = '+----+----------+-------+-----------+-------------+------+-------+-----+--------+';
    assert.equal(r.stdout, [rule, '| ID | Provider | Label | Server ID | Public IPv4 | IPv6 | State | Age | Locked |', rule, rule, ''].join('\n'));
    assert.equal(await fx.zk.exists(paths.node(id)), false);
    const other = await seedNode(fx, { provider: 'gone-provider' });
    const r2 = await runCli([...cfg(), 'delete', other.id ?? '', '--now']);
    assert.deepEqual(r2, { code: 0, stdout: `Provider gone-provider for node ${other.id} not defined on this launcher\n`, stderr: '' });
  });

  test('hold: state hold, comment = reason, lock released', async () => {
    const node = await seedNode(fx);
    const id = node.id ?? '';
    const r = await runCli([...cfg(), 'hold', id, '--reason', 'debugging job foo'], { now: NOW });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, oneRowList([id, 'fake-provider', 'fake-label', 'srv-1', '203.0.113.5', '', 'hold', '00:00:00:00', 'unlocked']));
    const stored = await fx.zk.getNode(id);
    assert.equal(stored?.state, 'hold');
    assert.equal(stored?.comment, 'debugging job foo');
    const missing = await runCli([...cfg(), 'hold', '0000009999', '--json']);
    assert.deepEqual(JSON.parse(missing.stdout), { message: 'Node id 0000009999 not found' });
    const j = await runCli([...cfg(), 'hold', id, '--json'], { now: NOW });
    const rows = JSON.parse(j.stdout) as { state: string; comment: string }[];
    assert.equal(rows[0]?.state, 'hold');
    assert.equal(rows[0]?.comment, 'debugging job foo');
  });

  test('erase: prompt, abort, erase only that provider', async () => {
    const mine = await seedNode(fx, { provider: 'doomed' });
    const theirs = await seedNode(fx, { provider: 'fake-provider' });
    await seedBuild(fx, '0000000005', newImageBuild({ state: 'ready', state_time: NOW }));
    for (const p of ['doomed', 'fake-provider']) {
      await seedUpload(fx, '0000000005', p, '0000000001', newImageUpload({ state: 'ready', state_time: NOW, external_id: `img-${p}` }));
    }
    const no = await runCli([...cfg(), 'erase', 'doomed'], { stdin: 'n\n' });
    assert.deepEqual(no, {
      code: 0, stderr: '',
      stdout: '\nWARNING! This action is not reversible!\nErase ZooKeeper data for provider doomed? [N/y] Aborting. No data erased.\n',
    });
    const eof = await runCli([...cfg(), 'erase', 'doomed'], { stdin: '' });
    assert.match(eof.stdout, /Aborting\. No data erased\.\n$/);
    assert.equal(await fx.zk.exists(paths.node(mine.id ?? '')), true);

    const yes = await runCli([...cfg(), 'erase', 'doomed'], { stdin: 'Y\n' });
    assert.deepEqual(yes, {
      code: 0, stderr: '',
      stdout: '\nWARNING! This action is not reversible!\nErase ZooKeeper data for provider doomed? [N/y] '
        + 'Erasing build data for doomed...\nErasing node data for doomed...\n',
    });
    assert.equal(await fx.zk.exists(paths.node(mine.id ?? '')), false);
    assert.equal(await fx.zk.exists(paths.node(theirs.id ?? '')), true);
    assert.deepEqual(await fx.zk.getBuildProviders('fake-dib-image', '0000000005'), ['fake-provider']);

    const forced = await runCli([...cfg(), 'erase', 'nothing-here', '--force']);
    assert.deepEqual(forced, { code: 0, stderr: '', stdout: 'Erasing build data for nothing-here...\nErasing node data for nothing-here...\n' });
  });

  test('config-validate: good file, broken file', async () => {
    const good = await runCli([...cfg(), 'config-validate']);
    assert.equal(good.code, 0);
    assert.equal(good.stdout, '');
    assert.match(good.stderr, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO nodepool\.cmd\.config_validator: validating .*nodepool\.yaml\n/);
    assert.match(good.stderr, /INFO nodepool\.cmd\.nodepoolcmd: Configuration validation complete\n$/);
    const bad = join(fx.dir, 'bad.yaml');
    writeFileSync(bad, 'labels:\n  - name: x\n    min-ready: lots\n');
    const r = await runCli(['-c', bad, 'config-validate']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERROR/);
    const j = await runCli(['-c', bad, 'config-validate', '--json']);
    assert.equal(j.code, 1);
    assert.deepEqual(JSON.parse(j.stdout), { file: bad, valid: false });
  });
});

describe('failures', () => {
  test('no sub-command: help on stdout, exit 1', async () => {
    const r = await runCli([]);
    assert.deepEqual(r, { code: 1, stdout: MAIN_HELP, stderr: '' });
  });

  test('usage error: exit 2, argparse text on stderr', async () => {
    const r = await runCli(['delete']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'usage: nodepool delete [-h] [--now] [--json] id\nnodepool delete: error: the following arguments are required: id\n');
  });

  test('-h and --version', async () => {
    assert.deepEqual(await runCli(['-h']), { code: 0, stdout: MAIN_HELP, stderr: '' });
    assert.deepEqual(await runCli(['--version']), { code: 0, stdout: '0.1.0\n', stderr: '' });
  });

  test('missing or invalid config: clear message, exit 1', async () => {
    const r = await runCli(['-c', '/nonexistent/nodepool.yaml', 'list']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^nodepool: invalid configuration:\n.*\/nonexistent\/nodepool\.yaml/);
  });

  test('unreachable ZooKeeper: bounded wait, exit 1, names host:port', async () => {
    const fx = await makeFixture({ zookeeperYaml: 'zookeeper-servers:\n  - host: 127.0.0.1\n    port: 1\n    chroot: /nowhere\n' });
    try {
      const started = Date.now();
      const r = await runCli(['-c', fx.configFile, 'list'], { zkConnectTimeoutMs: 1500 });
      const took = Date.now() - started;
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^nodepool: Unable to connect to ZooKeeper at 127\.0\.0\.1:1\/nowhere within 1\.5s/);
      assert.ok(took < 5000, `took ${took} ms`);
    } finally {
      await fx.cleanup();
    }
  });

  test('-l with a missing logging config file', async () => {
    const r = await runCli(['-l', '/nonexistent/logging.conf', 'list']);
    assert.deepEqual(r, { code: 1, stdout: '', stderr: 'nodepool: Unable to read logging config file at /nonexistent/logging.conf\n' });
  });

  test('history/stats: plugged in, or a clear message when absent', async (t) => {
    const fx = await makeFixture();
    try {
      for (const cmd of ['history', 'stats']) {
        const r = await runCli(['-c', fx.configFile, cmd, '--help']);
        if (r.stderr === `${cmd}: not available in this build\n`) assert.equal(r.code, 1);
        else t.diagnostic(`${cmd} is provided by this build (exit ${r.code})`);
      }
    } finally {
      await fx.cleanup();
    }
  });
});
