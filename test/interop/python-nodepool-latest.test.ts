// The latest Nodepool's own Python code reading our tree: its component registry, its
// getRegisteredPools (what its launchers count before failing a declined request and read for
// priority), its label-list and node-list, on a TLS-only ZooKeeper (Nodepool 4+ requires TLS).
//
// Like python-nodepool.test.ts, the project ships no copy of Nodepool: the test runs when
// NODEPOOL_PY_LATEST_SRC points at a later Nodepool source tree (one with
// nodepool/zk/components.py; checked with 10.0.0+, the mirror's a0d1eb50) and is skipped
// otherwise. It imports only nodepool.zk and nodepool.status, which need Debian's python3-kazoo
// and python3-prettytable.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ZooKeeper } from '@nodepool-ts/core/zk';
import { waitFor } from '../helpers/harness.js';

const SRC = process.env.NODEPOOL_PY_LATEST_SRC ?? '';
const skip = SRC === '' || !existsSync(join(SRC, 'nodepool', 'zk', 'components.py'))
  ? 'NODEPOOL_PY_LATEST_SRC does not name a later Nodepool source tree' : false;

/** What Nodepool's own modules make of the tree, as JSON. */
const READER = `
import json, sys, time
from nodepool.zk import ZooKeeperClient
from nodepool.zk import zookeeper as zk
from nodepool.zk.components import COMPONENT_REGISTRY
from nodepool import status
hosts, ca, cert, key = sys.argv[1:5]
client = ZooKeeperClient(hosts, timeout=10.0, tls_ca=ca, tls_cert=cert, tls_key=key)
client.connect()
COMPONENT_REGISTRY.create(client)
z = zk.ZooKeeper(client, enable_cache=True)
time.sleep(2)
out = {kind: sorted((dict(c.content) for c in comps), key=lambda c: c.get('id') or '')
       for kind, comps in COMPONENT_REGISTRY.registry.all()}
out['model_api'] = COMPONENT_REGISTRY.registry.model_api
out['pools'] = sorted([p.id, p.provider_name, sorted(p.supported_labels), p.priority, p.paused]
                      for p in z.getRegisteredPools())
out['label_list'] = sorted(o['label'] for o in status.label_list(z)[0])
out['node_list'] = sorted([n['id'], n['provider'], n['state'], n['launcher']] for n in status.node_list(z)[0])
client.disconnect()
print(json.dumps(out))
`;

describe('the latest Nodepool reads our component registry', { skip }, () => {
  let dir: string;
  let zkDir: string;
  let hosts: string;
  let zk: ZooKeeper;
  const procs: ChildProcess[] = [];
  const run = promisify(execFile);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'np-latest-'));
    zkDir = join(dir, 'zk');
    hosts = execFileSync('bash', ['scripts/zk.sh', 'start-tls', zkDir], { encoding: 'utf8' }).trim();
    const [host = '', port = ''] = hosts.split(':');
    const tls = join(zkDir, 'tls');
    const tlsConf = { ca: join(tls, 'ca.pem'), cert: join(tls, 'client.pem'), key: join(tls, 'client.key') };
    const config = join(dir, 'nodepool.yaml');
    writeFileSync(config, `zookeeper-servers:
  - host: ${host}
    port: ${port}
zookeeper-tls:
  ca: ${tlsConf.ca}
  cert: ${tlsConf.cert}
  key: ${tlsConf.key}
images-dir: ${dir}/images
labels:
  - name: small
    min-ready: 1
  - name: large
    min-ready: 1
providers:
  - name: fake-cheap
    cloud: fake
    rate: 0.0001
    priority: 10
    cloud-images:
      - name: img
    pools:
      - name: main
        max-servers: 4
        labels:
          - name: small
            cloud-image: img
            min-ram: 1024
  - name: fake-big
    cloud: fake
    rate: 0.0001
    cloud-images:
      - name: img
    pools:
      - name: p1
        max-servers: 4
        labels:
          - name: large
            cloud-image: img
            min-ram: 8192
`);
    const env = { ...process.env, NODEPOOL_STATE_DIR: dir };
    for (const bin of ['launcher/bin/nodepool-launcher.js', 'builder/bin/nodepool-builder.js']) {
      const extra = bin.startsWith('launcher') ? ['--no-webapp'] : ['--fake'];
      procs.push(spawn(process.execPath, [`packages/${bin}`, '-f', '-c', config, ...extra], { stdio: 'ignore', env }));
    }
    zk = new ZooKeeper({ servers: [{ host, port: Number(port), chroot: null }], tls: tlsConf, connectTimeoutMs: 10_000 });
    await zk.connect();
    await waitFor('two ready nodes', async () => (await zk.getNodes()).filter((n) => n.state === 'ready').length === 2, 60_000);
  });

  after(async () => {
    for (const p of procs) p.kill('SIGINT');
    await Promise.all(procs.map((p) => (p.exitCode !== null ? null : new Promise((r) => p.once('exit', r)))));
    await zk?.close();
    if (zkDir) execFileSync('bash', ['scripts/zk.sh', 'stop', zkDir]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sees one launcher, one builder and each pool with its own labels and priority; label-list and node-list agree', async () => {
    const tls = join(zkDir, 'tls');
    const r = await run('/usr/bin/python3', ['-c', READER, hosts, join(tls, 'ca.pem'), join(tls, 'client.pem'), join(tls, 'client.key')],
      { cwd: SRC, env: { ...process.env, PYTHONPATH: SRC }, timeout: 60_000 });
    const seen = JSON.parse(r.stdout) as {
      launcher: { kind: string; state: string }[]; builder: { kind: string }[]; pool: { id: string; name: string }[];
      model_api: number; pools: unknown[][]; label_list: string[]; node_list: string[][];
    };
    assert.equal(seen.launcher.length, 1);
    assert.equal(seen.launcher[0]?.state, 'running');
    assert.equal(seen.builder.length, 1);
    assert.equal(seen.model_api, 0);
    const nodes = await zk.getNodes();
    const launcherOf = (provider: string) => nodes.find((n) => n.provider === provider)?.launcher ?? '';
    assert.deepEqual(seen.pools, [
      [launcherOf('fake-big'), 'fake-big', ['large'], 100, false],
      [launcherOf('fake-cheap'), 'fake-cheap', ['small'], 10, false],
    ].sort());
    assert.deepEqual(seen.pool.map((p) => p.name).sort(), ['main', 'p1']);
    assert.deepEqual(seen.label_list, ['large', 'small']);
    assert.deepEqual(seen.node_list, nodes.map((n) => [n.id, n.provider, n.state, n.launcher]).sort());
  });
});
