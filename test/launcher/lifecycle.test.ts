// Launcher lifecycle scenarios: Zuul (kazoo) end to end, several launchers, cleanup tasks,
// config reload, bad input — fake provider, real ZooKeeper.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { newImageBuild, newImageUpload, newNode, newNodeRequest, type NodeRequest } from '@nodepool-ts/core/model';
import { paths, type ZooKeeper } from '@nodepool-ts/core/zk';
import { Launcher } from '@nodepool-ts/launcher';
import { fakeConfig, waitFor, envWithZk } from '../helpers/harness.js';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function startLauncher(configFile: string, hostname = 'test', extra: Partial<ConstructorParameters<typeof Launcher>[0]> = {}): Promise<Launcher> {
  const l = new Launcher({ configFile, hostname, watchIntervalMs: 100, ...extra });
  await l.start();
  cleanups.push(() => l.stop());
  return l;
}

async function waitDone(zk: ZooKeeper, id: string, timeoutMs = 20_000): Promise<NodeRequest> {
  return waitFor(`request ${id} done`, async () => {
    const r = await zk.getNodeRequest(id);
    return r && (r.state === 'fulfilled' || r.state === 'failed') ? r : null;
  }, timeoutMs);
}

function runPython(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('/usr/bin/python3', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    p.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

test('a kazoo client acting as Zuul gets its nodes end to end; used nodes are deleted', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const cfg = env.write('nodepool.yaml', fakeConfig(env, { labels: [{ name: 'fake-label', minReady: 1 }, { name: 'fake-label2' }] }));
  await startLauncher(cfg);
  const r = await runPython(['test/zuul/zuul_client.py', env.kazooHosts, 'fake-label,fake-label2', '--count', '3', '--timeout', '30']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const results = lines.filter((l) => !l.summary);
  assert.equal(results.length, 3);
  for (const res of results) {
    assert.equal(res.outcome, 'fulfilled');
    assert.deepEqual(res.labels, [['fake-label'], ['fake-label2']]);
    assert.equal(res.event_id_kept, true, 'unknown request keys (event_id) survive our rewrite');
  }
  // every node Zuul used is gone; only the min-ready node remains
  await waitFor('used nodes deleted', async () => {
    const nodes = await zk.getNodes();
    return nodes.every((n) => n.state === 'ready') && nodes.length >= 1;
  }).catch(async (err: Error) => {
    const nodes = await zk.getNodes();
    const states = await Promise.all(nodes.map(async (n) => `${n.id}:${n.state}:${n.allocated_to}:${await zk.isNodeLocked(n.id ?? '') ? 'locked' : 'unlocked'}`));
    throw new Error(`${err.message}; nodes: ${states.join(' ')}`);
  });
});

test('two launchers sharing one ZooKeeper never double-allocate a node', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const stateFile = `${env.dir}/fake-cloud.json`;
  const yaml = fakeConfig(env, {
    labels: [{ name: 'fake-label', minReady: 4 }],
    providerExtra: `    state-file: ${stateFile}\n`,
  });
  const cfg = env.write('nodepool.yaml', yaml);
  await startLauncher(cfg, 'launcher-a');
  await startLauncher(cfg, 'launcher-b');
  const ids: string[] = [];
  for (let i = 0; i < 24; i++) {
    ids.push(await zk.submitNodeRequest(newNodeRequest({ node_types: ['fake-label'], requestor: 'two-launchers' }), '200'));
  }
  const seen = new Map<string, string>();
  for (const id of ids) {
    const req = await waitDone(zk, id, 30_000);
    assert.equal(req.state, 'fulfilled');
    for (const n of req.nodes) {
      assert.ok(!seen.has(n), `node ${n} allocated to ${seen.get(n)} and ${id}`);
      seen.set(n, id);
      const node = await zk.getNode(n);
      assert.equal(node?.allocated_to, id);
    }
  }
  const launchers = new Set((await zk.getNodes()).map((n) => n.launcher?.split('-')[1]));
  assert.ok(launchers.size >= 1);
});

test('a leaked server (ours by metadata, no znode) is deleted by the cleanup worker', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const cfg = env.write('nodepool.yaml', fakeConfig(env));
  const launcher = await startLauncher(cfg);
  const req = await waitDone(zk, await zk.submitNodeRequest(newNodeRequest({ node_types: ['fake-label'] }), '200'));
  const node = await zk.getNode(req.nodes[0] ?? '');
  assert.ok(node?.external_id);
  // the znode vanishes behind the launcher's back (e.g. an operator's erase)
  await zk.deleteNodeRequest(req.id ?? '');
  await zk.deleteRawNode(node.id ?? '');
  await launcher.runCleanup();
  await waitFor('leaked server deleted', async () =>
    (await launcher.manager('fake-provider')?.kind === 'cloud')
      && (await (launcher.manager('fake-provider') as { getServer(id: string): Promise<unknown> }).getServer(node.external_id ?? '')) === null);
  await waitFor('artificial record removed', async () => (await zk.getNodes()).length === 0);
});

test('a deletion cut short by a graceful stop is logged as such, not as an error', async () => {
  const { env, zk } = await envWithZk(cleanups);
  // a deleted server lingers 30 s: the deletion is still waiting for it when the launcher stops
  const cfg = env.write('nodepool.yaml', fakeConfig(env, { providerExtra: '    faults:\n      delete-delay: 30' }));
  const lines: { level: number; msg: string }[] = [];
  class Capturing extends Launcher {
    override logger(name: string): ReturnType<Launcher['logger']> {
      const base = super.logger(name);
      const keep = (level: number) => (obj: unknown, msg?: string) => {
        lines.push({ level, msg: typeof obj === 'string' ? obj : msg ?? '' });
      };
      return Object.assign(Object.create(base) as object, { error: keep(50), info: keep(30) }) as ReturnType<Launcher['logger']>;
    }
  }
  const l = new Capturing({ configFile: cfg, hostname: 'test', watchIntervalMs: 100 });
  await l.start();
  const req = await waitDone(zk, await zk.submitNodeRequest(newNodeRequest({ node_types: ['fake-label'] }), '200'));
  const id = req.nodes[0] ?? '';
  const node = await zk.getNode(id);
  assert.ok(node);
  node.state = 'used';
  await zk.storeNode(node);
  await zk.deleteNodeRequest(req.id ?? '');
  await waitFor('deletion under way', async () => (await zk.getNode(id))?.state === 'deleting');
  await l.stop();
  assert.deepEqual(lines.filter((x) => x.level >= 50 && x.msg.includes(id)), [], 'no error logged for the interrupted deletion');
  assert.ok(lines.some((x) => x.msg === `Deletion of node ${id} interrupted by shutdown; it stays deleting`));
  assert.equal((await zk.getNode(id))?.state, 'deleting');
});

test('max-ready-age and max-hold-age / hold_expiration delete old nodes', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const cfg = env.write('nodepool.yaml', fakeConfig(env, {
    labels: [{ name: 'fake-label', maxReadyAge: 2 }],
    top: 'max-hold-age: 3600\n',
  }));
  const launcher = await startLauncher(cfg);
  const old = newNode({ state: 'ready', provider: 'fake-provider', pool: 'main', type: ['fake-label'] });
  old.state_time = Date.now() / 1000 - 60;
  await zk.storeNode(old);
  const held = newNode({ state: 'hold', provider: 'fake-provider', pool: 'main', type: ['fake-label'], hold_expiration: 5 });
  held.state_time = Date.now() / 1000 - 10;
  await zk.storeNode(held);
  const heldForever = newNode({ state: 'hold', provider: 'fake-provider', pool: 'main', type: ['fake-label'] });
  heldForever.state_time = Date.now() / 1000 - 60;
  await zk.storeNode(heldForever);
  await launcher.runCleanup();
  await waitFor('old ready node gone', async () => (await zk.getNode(old.id ?? '')) === null);
  await waitFor('expired hold gone', async () => (await zk.getNode(held.id ?? '')) === null);
  assert.equal((await zk.getNode(heldForever.id ?? ''))?.state, 'hold', 'a hold younger than max-hold-age stays');
});

test('a pending request whose launcher died is reset and served (lost request)', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const cfg = env.write('nodepool.yaml', fakeConfig(env));
  // A request left `pending` by a launcher that died, holding an allocated READY node.
  const reqId = await zk.submitNodeRequest(newNodeRequest({ node_types: ['fake-label'] }), '200');
  const node = newNode({ state: 'ready', provider: 'fake-provider', pool: 'main', type: ['fake-label'], allocated_to: reqId });
  await zk.storeNode(node);
  const req = await zk.getNodeRequest(reqId);
  assert.ok(req);
  req.state = 'pending';
  await zk.storeNodeRequest(req);
  const launcher = await startLauncher(cfg);
  await launcher.runCleanup();
  const done = await waitDone(zk, reqId);
  assert.equal(done.state, 'fulfilled');
});

test('malformed request znodes fail one by one; good requests are still served', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const cfg = env.write('nodepool.yaml', fakeConfig(env));
  const launcher = await startLauncher(cfg);
  const raw = zk.client;
  const bad: string[] = [];
  for (const data of ['garbage{', '[1, 2]', '{"state": 7}', '"a string"']) {
    const path = await new Promise<string>((resolve, reject) => {
      raw.create(`${paths.requestsRoot}/200-`, Buffer.from(data), 3 /* EPHEMERAL_SEQUENTIAL */, (err, p) => (err ? reject(err) : resolve(p)));
    });
    bad.push(path.split('/').pop() ?? '');
  }
  const good = await zk.submitNodeRequest(newNodeRequest({ node_types: ['fake-label'] }), '200');
  assert.equal((await waitDone(zk, good)).state, 'fulfilled');
  await launcher.handleMalformed();
  for (const id of bad) {
    const r = await zk.getNodeRequest(id);
    assert.equal(r?.state, 'failed', `malformed request ${id} is failed`);
  }
});

test('config reload: new labels are registered, a removed provider stops; a broken file changes nothing', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const cfgPath = env.write('nodepool.yaml', fakeConfig(env));
  const launcher = await startLauncher(cfgPath);
  const labelsOf = async () => (await zk.getRegisteredLaunchers()).flatMap((l) => l.supported_labels);
  assert.deepEqual(await labelsOf(), ['fake-label']);
  writeFileSync(cfgPath, fakeConfig(env, { labels: [{ name: 'fake-label' }, { name: 'other' }] }));
  await waitFor('labels re-registered', async () => (await labelsOf()).includes('other'));
  writeFileSync(cfgPath, 'providers: [ this is : not yaml');
  await new Promise((r) => setTimeout(r, 400));
  assert.ok((await labelsOf()).includes('other'), 'previous config stays in force');
  const ok = await waitDone(zk, await zk.submitNodeRequest(newNodeRequest({ node_types: ['other'] }), '200'));
  assert.equal(ok.state, 'fulfilled');
  writeFileSync(cfgPath, fakeConfig(env, { providerName: 'fake-two' }));
  await waitFor('old pool worker unregistered', async () =>
    (await zk.getRegisteredLaunchers()).every((l) => l.provider_name === 'fake-two'));
  assert.equal(launcher.poolWorkers.length, 1);
});

test('a config edited while the launcher is still starting (ZooKeeper not up yet) is read once it runs', async () => {
  const { execFileSync } = await import('node:child_process');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { createServer } = await import('node:net');
  const { ZooKeeper: Zk } = await import('@nodepool-ts/core/zk');
  const dir = mkdtempSync(join(tmpdir(), 'np-late-zk-'));
  const port = await new Promise<number>((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
  cleanups.push(() => {
    execFileSync('bash', ['scripts/zk.sh', 'stop', join(dir, 'zk')]);
    rmSync(dir, { recursive: true, force: true });
  });
  const env = { zkYaml: `zookeeper-servers:\n  - host: 127.0.0.1\n    port: ${port}\n` } as Parameters<typeof fakeConfig>[0];
  const cfgPath = join(dir, 'nodepool.yaml');
  writeFileSync(cfgPath, fakeConfig(env));
  const launcher = new Launcher({ configFile: cfgPath, hostname: 'test', watchIntervalMs: 100 });
  cleanups.push(() => launcher.stop());
  const starting = launcher.start();
  // read, now waiting for ZooKeeper: the edit lands before the file watch exists
  await new Promise((r) => setTimeout(r, 500));
  writeFileSync(cfgPath, fakeConfig(env, { labels: [{ name: 'fake-label' }, { name: 'other' }] }));
  execFileSync('bash', ['scripts/zk.sh', 'start', join(dir, 'zk'), String(port)]);
  await starting;
  const zk = new Zk({ servers: [{ host: '127.0.0.1', port, chroot: null }] });
  await zk.connect();
  cleanups.push(() => zk.close());
  await waitFor('the edited labels registered', async () =>
    (await zk.getRegisteredLaunchers()).flatMap((l) => l.supported_labels).includes('other'), 20_000);
});

test('two launchers with different providers: a label only one offers is served by it', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const a = env.write('a.yaml', fakeConfig(env, { labels: [{ name: 'only-a' }, { name: 'shared' }], providerName: 'fake-a' }));
  const b = env.write('b.yaml', fakeConfig(env, { labels: [{ name: 'only-b' }, { name: 'shared' }], providerName: 'fake-b' }));
  await startLauncher(a, 'la');
  await startLauncher(b, 'lb');
  await waitFor('both registered', async () => (await zk.getRegisteredLaunchers()).length === 2);
  const r1 = await waitDone(zk, await zk.submitNodeRequest(newNodeRequest({ node_types: ['only-b'] }), '200'));
  assert.equal(r1.state, 'fulfilled');
  assert.equal((await zk.getNode(r1.nodes[0] ?? ''))?.provider, 'fake-b');
  const r2 = await waitDone(zk, await zk.submitNodeRequest(newNodeRequest({ node_types: ['shared'], provider: 'fake-a' }), '200'));
  assert.equal((await zk.getNode(r2.nodes[0] ?? ''))?.provider, 'fake-a', 'preferred provider honoured');
  const r3 = await waitDone(zk, await zk.submitNodeRequest(newNodeRequest({ node_types: ['nowhere'] }), '200'));
  assert.equal(r3.state, 'failed');
  assert.equal(r3.declined_by.length, 2, 'failed only once every launcher declined');
});

test('cron: cleanup and check schedules replace the default cleanup interval', async () => {
  const { env } = await envWithZk(cleanups);
  const cfg = env.write('nodepool.yaml', fakeConfig(env, { top: "cron:\n  cleanup: '*/5 * * * *'\n  check: '*/15 * * * *'\n" }));
  const launcher = await startLauncher(cfg);
  assert.deepEqual(launcher.describe().schedules, { cleanup: '*/5 * * * *', check: '*/15 * * * *', cronTasks: 2 });
  const plain = await startLauncher(env.write('plain.yaml', fakeConfig(env)), 'plain');
  assert.deepEqual(plain.describe().schedules, { cleanup: 'every 60s', check: null, cronTasks: 0 });
});

test('the node check deletes a READY node whose server vanished; min-ready replaces it', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const launcher = await startLauncher(env.write('nodepool.yaml', fakeConfig(env, { labels: [{ name: 'fake-label', minReady: 1 }] })));
  // a min-ready node is ours to check once the min-ready request released it (allocated_to null)
  const first = await waitFor('min-ready node', async () => {
    const n = (await zk.getNodes()).find((x) => x.state === 'ready' && x.allocated_to === null);
    return n && launcher.nodeCache.get(n.id ?? '')?.allocated_to === null ? n : null;
  });
  const cloud = launcher.manager('fake-provider');
  assert.ok(cloud && cloud.kind === 'cloud' && first.external_id);
  await cloud.deleteServer(first.external_id);
  assert.equal(await launcher.checkNodes(), 1);
  await waitFor('replacement ready', async () => (await zk.getNodes()).some((n) => n.state === 'ready' && n.id !== first.id));
  await waitFor('dead node gone', async () => (await zk.getNode(first.id ?? '')) === null);
});

test('min-ready starts once the label\'s first image upload becomes ready, and boots from it', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const yaml = `${env.zkYaml}
labels:
  - name: dib-label
    min-ready: 1
diskimages:
  - name: dib-image
providers:
  - name: fake-provider
    driver: fake
    rate: 0.001
    diskimages:
      - name: dib-image
    pools:
      - name: main
        max-servers: 5
        labels:
          - name: dib-label
            diskimage: dib-image
            min-ram: 8192
`;
  const launcher = await startLauncher(env.write('nodepool.yaml', yaml));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await zk.getNodes()).length, 0, 'no image yet: nothing to boot');
  const cloud = launcher.manager('fake-provider');
  assert.ok(cloud && cloud.kind === 'cloud');
  const file = env.write('dib-image-0000000001.raw', 'not really an image');
  const image = await cloud.uploadImage({ name: 'dib-image-1', file, format: 'raw', metadata: {} });
  const buildId = await zk.storeBuild('dib-image', { ...newImageBuild({ state: 'ready', formats: ['raw'] }) });
  const uploadId = await zk.storeImageUpload('dib-image', buildId, 'fake-provider',
    newImageUpload({ state: 'ready', external_id: image.id, external_name: image.name, format: 'raw' }));
  const node = await waitFor('min-ready node from the upload', async () =>
    (await zk.getNodes()).find((n) => n.state === 'ready'), 20_000);
  assert.equal(node.image_id, `/nodepool/images/dib-image/builds/${buildId}/providers/fake-provider/images/${uploadId}`);
});

test('python-path and shell-type of a cloud-image (later Nodepool) reach its nodes for Zuul; nodes of other images keep the 3.x JSON', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const yaml = fakeConfig(env, { labels: [{ name: 'fake-label' }, { name: 'plain-label' }] })
    .replace('      - name: fake-image\n', '      - name: fake-image\n        python-path: /usr/bin/python3\n        shell-type: csh\n      - name: plain-image\n')
    .replace('          - name: plain-label\n            cloud-image: fake-image', '          - name: plain-label\n            cloud-image: plain-image');
  await startLauncher(env.write('nodepool.yaml', yaml));
  const rawNode = async (types: string[]) => {
    const req = await waitDone(zk, await zk.submitNodeRequest(newNodeRequest({ node_types: types, requestor: 'shell-test' }), '200'));
    assert.equal(req.state, 'fulfilled');
    return JSON.parse((await zk.getData(paths.node(req.nodes[0] ?? '')))?.toString() ?? '{}') as Record<string, unknown>;
  };
  const withShell = await rawNode(['fake-label']);
  assert.equal(withShell.python_path, '/usr/bin/python3');
  assert.equal(withShell.shell_type, 'csh');
  const plain = await rawNode(['plain-label']);
  assert.ok(!('python_path' in plain) && !('shell_type' in plain));
});

test('dynamic-instance-properties (Nodepool 8.0) are formatted from the request into the server metadata', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const yaml = fakeConfig(env).replace('            min-ram: 8192',
    '            min-ram: 8192\n            instance-properties:\n              team: infra\n'
    + '            dynamic-instance-properties:\n              request_info: "for {request.id} of {request.requestor} ({request.event_id})"\n'
    + '              labels: "{request.labels}"\n              broken: "{request.no_such_field}"');
  const launcher = await startLauncher(env.write('nodepool.yaml', yaml));
  const id = await zk.submitNodeRequest(newNodeRequest({
    node_types: ['fake-label'], requestor: 'zuul.example.org', extra: { event_id: 'ev-42' },
  }), '200');
  const req = await waitDone(zk, id);
  assert.equal(req.state, 'fulfilled');
  const node = await zk.getNode(req.nodes[0] ?? '');
  const cloud = launcher.manager('fake-provider') as unknown as { listServers(): Promise<{ id: string; metadata: Record<string, string> }[]> };
  const server = (await cloud.listServers()).find((s) => s.id === node?.external_id);
  assert.equal(server?.metadata.team, 'infra');
  assert.equal(server?.metadata.request_info, `for ${id} of zuul.example.org (ev-42)`);
  assert.equal(server?.metadata.labels, "['fake-label']", 'a list as Python prints it');
  assert.ok(server && !('broken' in server.metadata), 'a property that does not format is left out, the launch goes on');
});
