// Nodepool's own Python code against our ZooKeeper tree, the check a site running both makes:
//  - Nodepool's `nodepool` CLI reads what our launcher and builder wrote: list, list --detail,
//    image-list, dib-image-list, request-list and info print the same tables as ours;
//  - its `delete` and `image-build` act on our daemons (node replaced, build made);
//  - a Python nodepool-launcher shares the cluster: a Zuul-like kazoo client's request for a
//    label only it offers is declined by ours and fulfilled by it, and the reverse;
//  - Nodepool's builder in our builder's place: our launcher boots from its upload.
//
// Nodepool is not in Debian and these machines reach no PyPI, so the project ships no copy:
// the test runs when NODEPOOL_PY_SRC points at a Nodepool 3.x source tree (the protocol's
// snapshot, 3.5.0+38) and is skipped otherwise. It needs Debian's python3-kazoo, -yaml,
// -voluptuous, -prettytable, -paramiko, -daemon, -extras, -statsd, -openstacksdk, -pbr,
// -paste, -webob, -kubernetes and -diskimage-builder. Python 3.11 lacks Thread.isAlive and
// Debian's python3-openshift the old `client` module that Nodepool 3.x imports at load time:
// a sitecustomize and an empty `openshift` package made here stand in for them (Nodepool's
// openshift driver is never configured).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { newNodeRequest } from '@nodepool-ts/core/model';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import { connectZk, testEnv, waitFor, type TestEnv } from '../helpers/harness.js';

const SRC = process.env.NODEPOOL_PY_SRC ?? '';
const skip = SRC === '' || !existsSync(join(SRC, 'nodepool', 'cmd', 'nodepoolcmd.py'))
  ? 'NODEPOOL_PY_SRC does not name a Nodepool source tree' : false;
const PY = '/usr/bin/python3';
const AGE = /\d\d:\d\d:\d\d:\d\d/g;

describe('Nodepool 3.x Python tools on our ZooKeeper tree', { skip }, () => {
  let env: TestEnv;
  let zk: ZooKeeper;
  const procs: { name: string; p: ChildProcess; out: () => string }[] = [];
  let ours: string;
  let theirs: string;
  let pyEnv: NodeJS.ProcessEnv;

  function start(name: string, cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): void {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd, env: opts.env ?? process.env });
    let out = '';
    p.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
    procs.push({ name, p, out: () => out });
  }

  function logs(): string {
    return procs.map((x) => `--- ${x.name}\n${x.out().slice(-4000)}`).join('\n');
  }

  // (asynchronous: a blocked event loop would cost the test's own ZooKeeper session)
  const run = promisify(execFile);

  /** Nodepool's Python CLI (`python3 -c` on its cmd module: no install needed). */
  async function pyNodepool(args: string[]): Promise<string> {
    const r = await run(PY, ['-c', 'import sys; from nodepool.cmd import nodepoolcmd; sys.argv = ["nodepool"] + sys.argv[1:]; nodepoolcmd.main()',
      '-c', ours, ...args], { cwd: SRC, env: pyEnv, timeout: 60_000 });
    return r.stdout;
  }

  async function tsNodepool(args: string[]): Promise<string> {
    return (await run(process.execPath, ['packages/cli/bin/nodepool.js', '-c', ours, ...args], { timeout: 60_000 })).stdout;
  }

  before(async () => {
    env = testEnv();
    zk = await connectZk(env);
    const shim = join(env.dir, 'shim');
    mkdirSync(join(shim, 'openshift'), { recursive: true });
    writeFileSync(join(shim, 'sitecustomize.py'), 'import threading\nthreading.Thread.isAlive = threading.Thread.is_alive\n');
    writeFileSync(join(shim, 'openshift', '__init__.py'), '');
    writeFileSync(join(shim, 'openshift', 'client.py'), '');
    writeFileSync(join(shim, 'openshift', 'config.py'), 'def load_kube_config(*a, **kw):\n    raise FileNotFoundError()\n');
    // Nodepool's fake driver reads its cloud from clouds.yaml, as its own test fixtures do
    const clouds = env.write('clouds.yaml', 'clouds:\n  fake:\n    auth:\n      username: fake\n      password: fake\n'
      + '      project_id: fake\n      auth_url: http://127.0.0.1:1/v3\n    region_name: fake-region\n');
    pyEnv = { ...process.env, PYTHONPATH: shim, PBR_VERSION: '3.5.0', OS_CLIENT_CONFIG_FILE: clouds, HOME: env.dir };
    const provider = (name: string, labels: string[]) => `  - name: ${name}
    cloud: fake
    region-name: fake-region
    rate: 0.0001
${labels.includes('dib-label') ? '    diskimages:\n      - name: fake-image\n' : ''}    cloud-images:
      - name: cloud-image
        image-id: cloud-image
    pools:
      - name: main
        max-servers: 10
        availability-zones: [az1]
        labels:
${labels.map((l) => `          - name: ${l}\n            ${l === 'dib-label' ? 'diskimage: fake-image' : 'cloud-image: cloud-image'}\n            min-ram: 8192`).join('\n')}
`;
    const common = `${env.zkYaml}images-dir: ${env.dir}/images
build-log-dir: ${env.dir}/builds
labels:
  - name: fake-label
    min-ready: 2
  - name: dib-label
    min-ready: 1
  - name: py-label
    min-ready: 0
diskimages:
  - name: fake-image
    elements: [fedora, vm]
providers:
`;
    ours = env.write('nodepool.yaml', common + provider('fake-provider', ['fake-label', 'dib-label']));
    theirs = env.write('python-launcher.yaml', common + provider('fake-py', ['fake-label', 'py-label']));
    const tsEnv = { ...process.env, NODEPOOL_STATE_DIR: env.dir };
    start('nodepool-builder', process.execPath, ['packages/builder/bin/nodepool-builder.js', '-f', '--fake', '-c', ours, '-p', join(env.dir, 'b.pid')], { env: tsEnv });
    start('nodepool-launcher', process.execPath, ['packages/launcher/bin/nodepool-launcher.js', '-f', '-c', ours, '-p', join(env.dir, 'l.pid'), '--no-webapp'], { env: tsEnv });
    await waitFor('our daemons: an upload and three ready nodes', async () =>
      (await zk.getNodes()).filter((n) => n.state === 'ready').length === 3, 60_000)
      .catch((e: Error) => { throw new Error(`${e.message}\n${logs()}`); });
  });

  after(async () => {
    for (const x of procs) x.p.kill('SIGINT');
    await Promise.all(procs.map((x) => new Promise((r) => {
      if (x.p.exitCode !== null || x.p.signalCode !== null) r(null);
      else {
        const t = setTimeout(() => x.p.kill('SIGKILL'), 20_000);
        x.p.on('exit', () => { clearTimeout(t); r(null); });
      }
    })));
    await zk?.close();
    env?.cleanup();
  });

  it("Nodepool's CLI validates our config and prints the tables ours prints", async () => {
    await pyNodepool(['config-validate']);
    for (const args of [['list'], ['list', '--detail'], ['image-list'], ['dib-image-list'], ['request-list'], ['info', 'fake-provider']]) {
      const py = await pyNodepool(args);
      const ts = await tsNodepool(args);
      // ages tick between the two runs
      const mask = (s: string) => s.replace(AGE, 'dd:hh:mm:ss');
      assert.equal(mask(py), mask(ts), `nodepool ${args.join(' ')}`);
    }
    assert.match(await pyNodepool(['list']), /\| fake-provider \| dib-label +\|/);
  });

  it('held, locked and failed: the tables still agree', async () => {
    const ready = (await zk.getNodes()).filter((n) => n.type.includes('fake-label') && n.state === 'ready');
    const [held, locked] = ready;
    assert.ok(held?.id && locked);
    await tsNodepool(['hold', held.id, '--reason', 'debugging: a "quoted" reason']);
    assert.ok(await zk.lockNode(locked, { blocking: false }));
    const failed = await zk.submitNodeRequest(newNodeRequest({ node_types: ['no-such-label'], requestor: 'interop' }), '100');
    await waitFor('the unknown label declined', async () => (await zk.getNodeRequest(failed))?.state === 'failed', 20_000);
    try {
      const mask = (s: string) => s.replace(AGE, 'dd:hh:mm:ss');
      for (const args of [['list', '--detail'], ['request-list']]) {
        assert.equal(mask(await pyNodepool(args)), mask(await tsNodepool(args)), `nodepool ${args.join(' ')}`);
      }
      const detail = await pyNodepool(['list', '--detail']);
      assert.match(detail, /\| hold +\|[^\n]*\| debugging: a "quoted" reason \|/);
      assert.match(detail, new RegExp(`\\| ${locked.id} \\|[^\\n]*\\| ready +\\| [^|]+\\| locked +\\|`));
      assert.match(await pyNodepool(['request-list']), /\| failed +\| interop +\| no-such-label +\| +\| [^|]*PoolWorker\.fake-provider-main +\|/);
    } finally {
      await zk.unlockNode(locked);
      await zk.deleteNodeRequest(failed);
    }
  });

  it("Nodepool's delete and image-build act on our launcher and builder", async () => {
    const victim = (await zk.getNodes()).find((n) => n.type.includes('fake-label') && n.state === 'ready');
    assert.ok(victim?.id);
    const id = victim.id;
    await pyNodepool(['delete', id]);
    await waitFor('the node deleted and min-ready refilled', async () => {
      const nodes = await zk.getNodes();
      return !nodes.some((n) => n.id === id)
        && nodes.filter((n) => n.type.includes('fake-label') && n.state === 'ready').length === 2;
    }, 30_000).catch((e: Error) => { throw new Error(`${e.message}\n${logs()}`); });
    await pyNodepool(['image-build', 'fake-image']);
    await waitFor('build 0000000002 ready', async () => (await zk.getBuild('fake-image', '0000000002'))?.state === 'ready', 60_000)
      .catch((e: Error) => { throw new Error(`${e.message}\n${logs()}`); });
  });

  it('a Python nodepool-launcher shares the cluster: each serves what only it offers', async () => {
    start('python nodepool-launcher', PY, ['-c', 'import sys; from nodepool.cmd import launcher; sys.argv = ["nodepool-launcher"] + sys.argv[1:]; launcher.main()',
      '-f', '-c', theirs, '-p', join(env.dir, 'py.pid'), '--no-webapp'], { cwd: SRC, env: pyEnv });
    await waitFor('both launchers registered', async () => (await zk.getRegisteredLaunchers()).length === 2, 60_000)
      .catch((e: Error) => { throw new Error(`${e.message}\n${logs()}`); });
    const client = async (labels: string) => {
      const r = await run(PY, ['test/zuul/zuul_client.py', env.kazooHosts, labels, '--count', '2', '--timeout', '90'], { timeout: 200_000 })
        .catch((e: Error & { stdout?: string; stderr?: string }) => { throw new Error(`${e.message}${e.stdout ?? ''}${e.stderr ?? ''}\n${logs()}`); });
      return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => !l.summary);
    };
    // Nodepool's fake cloud gives every server the address 'fake'; ours gives 198.18.0.0/15
    const [py, dib] = await Promise.all([client('py-label'), client('dib-label')]);
    for (const r of py) {
      assert.equal(r.outcome, 'fulfilled');
      assert.deepEqual(r.interface_ips, ['fake'], 'served by the Python launcher');
      assert.ok((r.declined_by as string[]).some((d) => d.endsWith('PoolWorker.fake-provider-main')), 'ours declined it');
    }
    for (const r of dib) {
      assert.equal(r.outcome, 'fulfilled');
      assert.match((r.interface_ips as string[])[0] ?? '', /^198\.1[89]\./, 'served by ours');
    }
    const byProvider = new Set((await zk.getNodes()).map((n) => n.provider));
    assert.ok(byProvider.has('fake-py') && byProvider.has('fake-provider'));
    assert.doesNotMatch(procs.find((x) => x.name === 'python nodepool-launcher')?.out() ?? '', /Traceback/);
  });

  it("Nodepool's builder in our builder's place: our launcher boots from its upload", async () => {
    const ourBuilder = procs.find((x) => x.name === 'nodepool-builder');
    assert.ok(ourBuilder);
    const gone = new Promise((r) => ourBuilder.p.once('exit', r));
    ourBuilder.p.kill('SIGINT');
    await gone;
    // Nodepool's fake-image-create insists on its test fixture's DIB environment
    const dibEnv = { DIB_RELEASE: '21', TMPDIR: '/opt/dib_tmp', DIB_IMAGE_CACHE: '/opt/dib_cache',
      DIB_CLOUD_IMAGES: 'http://download.fedoraproject.org/pub/fedora/linux/releases/test/21-Beta/Cloud/Images/x86_64/',
      BASE_IMAGE_FILE: 'Fedora-Cloud-Base-20141029-21_Beta.x86_64.qcow2' };
    const pyBuilder = env.write('python-builder.yaml', readFileSync(ours, 'utf8')
      .replace(`images-dir: ${env.dir}/images`, `images-dir: ${env.dir}/python-images`)
      .replace('    elements: [fedora, vm]\n', `    elements: [fedora, vm]\n    env-vars:\n${Object.entries(dibEnv).map(([k, v]) => `      ${k}: '${v}'\n`).join('')}`));
    mkdirSync(join(env.dir, 'python-images'));
    start('python nodepool-builder', PY, ['-c', 'import sys; from nodepool.cmd import builder; sys.argv = ["nodepool-builder"] + sys.argv[1:]; builder.main()',
      '-f', '--fake', '-c', pyBuilder, '-p', join(env.dir, 'pyb.pid')], { cwd: SRC, env: pyEnv });
    await pyNodepool(['image-build', 'fake-image']);
    const upload = await waitFor('the Python builder\'s build 3 uploaded', async () =>
      (await zk.getImageUploads('fake-image', '0000000003', 'fake-provider', ['ready']))[0], 90_000)
      .catch((e: Error) => { throw new Error(`${e.message}\n${logs()}`); });
    // two nodes: the min-ready one is handed out, the other is booted from the newest upload
    const id = await zk.submitNodeRequest(newNodeRequest({ node_types: ['dib-label', 'dib-label'], requestor: 'interop' }), '100');
    const req = await waitFor('the request served', async () => {
      const r = await zk.getNodeRequest(id);
      return r?.state === 'fulfilled' || r?.state === 'failed' ? r : null;
    }, 30_000);
    assert.equal(req.state, 'fulfilled', logs());
    const images = await Promise.all(req.nodes.map(async (n) => (await zk.getNode(n))?.image_id));
    assert.ok(images.includes(`/nodepool/images/fake-image/builds/0000000003/providers/fake-provider/images/${upload.id}`), images.join(', '));
    await zk.deleteNodeRequest(id);
  });
});
