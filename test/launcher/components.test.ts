// Nodepool 6.1+'s component registry (`/nodepool/components/{launcher,pool,builder}`), read and
// written by kazoo as later Nodepool does: our launcher's components as Nodepool's registry reads
// them, kept across a session expiry, gone at stop; a later Nodepool's pool (a component only,
// no 3.x registration) counted when a request is declined, in `label-list`, and for priority.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { newNodeRequest, type NodeRequest } from '@nodepool-ts/core/model';
import { componentVersion, paths, type ZooKeeper } from '@nodepool-ts/core/zk';
import { labelList } from '@nodepool-ts/cli/status';
import { expireSession } from '../../packages/core/test/zk-helpers.js';
import { fakeConfig, waitFor, type TestEnv } from '../helpers/harness.js';
import { startLauncher } from '../helpers/launcher.js';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const setup = (yaml: (env: TestEnv) => string) => startLauncher(cleanups, yaml);

async function submit(zk: ZooKeeper, nodeTypes: string[]): Promise<string> {
  return zk.submitNodeRequest(newNodeRequest({ node_types: nodeTypes, requestor: 'unit-test' }), '200');
}

/** What Nodepool's ComponentRegistry reads: every component's content, and whether its bytes are json.dumps(sort_keys=True). */
function readRegistry(env: TestEnv): Record<string, { name: string; content: Record<string, unknown>; sortedDump: boolean; owner: string }[]> {
  const r = spawnSync('/usr/bin/python3', ['-c', `
import json, sys
from kazoo.client import KazooClient
zk = KazooClient(sys.argv[1]); zk.start()
out = {}
for kind in ('launcher', 'pool', 'builder'):
    out[kind] = []
    root = '/nodepool/components/' + kind
    if not zk.exists(root):
        continue
    for name in sorted(zk.get_children(root)):
        data, stat = zk.get(root + '/' + name)
        content = json.loads(data.decode('utf8'))
        out[kind].append({'name': name, 'content': content, 'owner': '%x' % stat.ephemeralOwner,
                          'sortedDump': json.dumps(content, sort_keys=True).encode('utf8') == data})
zk.stop()
print(json.dumps(out))
`, env.kazooHosts], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as ReturnType<typeof readRegistry>;
}

/** A later Nodepool's pool worker, as far as the registry goes: a pool component kazoo registers and updates. */
class PythonPool {
  private readonly py: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  constructor(env: TestEnv, content: Record<string, unknown>) {
    this.py = spawn('/usr/bin/python3', ['-c', `
import json, sys
from kazoo.client import KazooClient
zk = KazooClient(sys.argv[1]); zk.start()
content = json.loads(sys.argv[2])
path = zk.create('/nodepool/components/pool/' + content['hostname'], json.dumps(content, sort_keys=True).encode('utf-8'),
                 makepath=True, ephemeral=True, sequence=True)
print(path, flush=True)
for line in sys.stdin:
    content.update(json.loads(line))
    zk.set(path, json.dumps(content, sort_keys=True).encode('utf-8'))
    print('set', flush=True)
zk.stop()
`, env.kazooHosts, JSON.stringify(content)]);
    this.lines = createInterface({ input: this.py.stdout })[Symbol.asyncIterator]();
    cleanups.push(() => this.stop());
  }
  async next(): Promise<string> {
    const got = await this.lines.next();
    assert.ok(!got.done, 'the kazoo pool exited');
    return got.value;
  }
  async update(fields: Record<string, unknown>): Promise<void> {
    this.py.stdin.write(`${JSON.stringify(fields)}\n`);
    assert.equal(await this.next(), 'set');
  }
  async stop(): Promise<void> {
    if (this.py.exitCode !== null) return;
    const exited = new Promise((r) => this.py.once('exit', r));
    this.py.stdin.end();
    await exited;
  }
}

function pythonPoolContent(id: string, labels: string[], priority = 100): Record<string, unknown> {
  return {
    hostname: 'py-host', kind: 'pool', model_api: 0, state: 'running', version: '11.0.1',
    id, name: 'main', provider_name: 'other-cloud', supported_labels: labels, priority, paused: false,
  };
}

test('the launcher registers a launcher component and one pool component per pool, as Nodepool 6.1+ does', async () => {
  const { env, launcher } = await setup((e) => fakeConfig(e, {
    labels: [{ name: 'fake-label' }, { name: 'other' }], poolLabels: ['fake-label'],
  }).replace('        max-servers: 96\n', '        max-servers: 96\n        priority: 7\n'));
  const workerId = `test-${process.pid}-PoolWorker.fake-provider-main`;
  const reg = await waitFor('components registered', () => {
    const r = readRegistry(env);
    return r['launcher']?.length === 1 && r['pool']?.length === 1 ? r : null;
  });
  const [lc] = reg['launcher'] ?? [];
  const [pc] = reg['pool'] ?? [];
  assert.ok(lc && pc);
  assert.match(lc.name, /^test\d{10}$/, 'a sequential znode named after the hostname');
  assert.deepEqual(lc.content, { hostname: 'test', kind: 'launcher', model_api: 0, state: 'running', version: componentVersion() });
  assert.deepEqual(pc.content, {
    hostname: 'test', kind: 'pool', model_api: 0, state: 'running', version: componentVersion(),
    id: workerId, name: 'main', provider_name: 'fake-provider', supported_labels: ['fake-label'], priority: 7, paused: false,
  }, "the pool's own labels (not the launcher's) and its priority");
  assert.ok(lc.sortedDump && pc.sortedDump, 'bytes are json.dumps(content, sort_keys=True)');
  const session = launcher.zk.sessionCredentials().id.toString('hex').replace(/^0+/, '');
  assert.equal(pc.owner, session, 'ephemeral, owned by the launcher\'s session');

  // a new session drops ephemerals: both come back in it
  await expireSession(launcher.zk);
  const again = await waitFor('components re-registered in the new session', () => {
    const r = readRegistry(env);
    const owner = launcher.zk.sessionCredentials().id.toString('hex').replace(/^0+/, '');
    return r['launcher']?.length === 1 && r['pool']?.length === 1
      && r['launcher'][0]?.owner === owner && r['pool'][0]?.owner === owner ? r : null;
  }, 30_000);
  assert.equal(again['pool']?.[0]?.content['id'], workerId);

  await launcher.stop();
  const gone = readRegistry(env);
  assert.deepEqual([gone['launcher'], gone['pool']], [[], []], 'unregistered at stop');
});

test("a later Nodepool's pool (a component only) keeps a request we decline open, and its labels are listed", async () => {
  const { env, zk, launcher } = await setup((e) => fakeConfig(e, { labels: [{ name: 'fake-label' }, { name: 'py-label' }], poolLabels: ['fake-label'] }));
  const ours = `test-${process.pid}-PoolWorker.fake-provider-main`;
  const py = new PythonPool(env, pythonPoolContent('py-host-9-PoolWorker.other-cloud-main', ['py-label']));
  assert.match(await py.next(), /^\/nodepool\/components\/pool\/py-host\d{10}$/);
  await waitFor('the launcher sees the kazoo pool', () => launcher.launchers().some((l) => l.id === 'py-host-9-PoolWorker.other-cloud-main'));
  assert.deepEqual((await labelList(zk)).map((l) => l.label), ['fake-label', 'py-label'], 'label-list: ours and the component\'s');

  const open = await submit(zk, ['py-label']);
  const declined = await waitFor('declined by our pool', async () => {
    const r = await zk.getNodeRequest(open);
    return r?.declined_by.includes(ours) ? r : null;
  });
  assert.equal(declined.state, 'requested', 'left for the pool that has not declined');

  // once that pool is gone, a request only it could serve fails when we decline it
  await py.stop();
  await waitFor('the kazoo pool went away', () => !launcher.launchers().some((l) => l.id.startsWith('py-host')));
  const later = await submit(zk, ['py-label']);
  const failed = await waitFor('declined and failed', async () => {
    const r = await zk.getNodeRequest(later);
    return r?.state === 'failed' ? r : null;
  });
  assert.deepEqual(failed.declined_by, [ours]);
});

test("provider priority across implementations: a later Nodepool's pool of priority 50 serves first until it says it is paused", async () => {
  const { env, zk, launcher } = await setup((e) => fakeConfig(e));
  const py = new PythonPool(env, pythonPoolContent('py-host-9-PoolWorker.other-cloud-main', ['fake-label'], 50));
  await py.next();
  await waitFor('the launcher sees the kazoo pool', () => launcher.launchers().some((l) => l.priority === 50));
  const ours = `test-${process.pid}-PoolWorker.fake-provider-main`;
  const id = await submit(zk, ['fake-label']);
  // our pool (priority 100) yields: the request is neither taken nor declined while the kazoo
  // pool of priority 50 is running and not paused (a later Nodepool launcher would lock it)
  await new Promise((r) => setTimeout(r, 1500));
  const waiting = await zk.getNodeRequest(id);
  assert.equal(waiting?.state, 'requested');
  assert.deepEqual(waiting?.declined_by, []);
  await py.update({ paused: true });
  const done = await waitFor('fulfilled by our pool', async () => {
    const r: NodeRequest | null = await zk.getNodeRequest(id);
    return r?.state === 'fulfilled' ? r : null;
  });
  assert.equal((await zk.getNode(done.nodes[0] ?? ''))?.launcher, ours);
  assert.ok((await zk.getChildren(paths.componentsOf('pool'))).length === 2);
});
