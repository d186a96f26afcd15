// Runtime static hosts in a real ZooKeeper: validation against the config, persistence,
// uniqueness, filters and the change watch.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, ConfigError, type Config } from '@nodepool-ts/core/config';
import { paths, type ZooKeeper } from '@nodepool-ts/core/zk';
import { StaticHostStore, StaticDriverError, StaticHostValidationError, filterHosts } from '../src/index.js';
import { connectZk, testEnv, waitFor, type TestEnv } from '../../../../test/helpers/harness.js';

let env: TestEnv;
let zk: ZooKeeper;
let config: Config;
let store: StaticHostStore;

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBLq8W8W6uuEac0O/uPfD6odwD2fi0qGG7eFTs3vn8y7';

before(async () => {
  env = testEnv();
  const file = env.write('nodepool.yaml', `${env.zkYaml}
labels:
  - name: small
  - name: large
  - name: gpu
providers:
  - name: rack
    driver: static
    pools:
      - name: main
        nodes:
          - name: configured-1.example
            labels: [small, large]
  - name: lab
    driver: static
    pools:
      - name: a
        nodes:
          - name: lab-1.example
            labels: gpu
      - name: b
        nodes:
          - name: lab-2.example
            labels: gpu
  - name: fake-cloud
    driver: fake
    cloud-images:
      - name: img
    pools:
      - name: main
        labels:
          - name: small
            cloud-image: img
            min-ram: 1
`);
  config = await loadConfig(file);
  zk = await connectZk(env);
  store = new StaticHostStore(zk);
});

after(async () => {
  await zk?.close();
  env?.cleanup();
});

describe('StaticHostStore', () => {
  it('adds a host with defaults, persisted under /nodepool/static-hosts/<provider>/<host>', async () => {
    const h = await store.add(config, { provider: 'rack', name: 'web-1.example', labels: 'small large', os: 'linux', tags: ['ssd'], addedBy: 'test' });
    assert.equal(h.pool, 'main');
    assert.deepEqual(h.labels, ['small', 'large']);
    assert.equal(h.username, 'zuul');
    assert.equal(h.timeout, 5);
    assert.equal(h.connectionPort, 22);
    assert.equal(h.connectionType, 'ssh');
    assert.equal(h.maxParallelJobs, 1);
    const raw = JSON.parse((await zk.getData(paths.staticHost('rack', 'web-1.example')))?.toString() ?? 'null') as Record<string, unknown>;
    assert.deepEqual(raw.labels, ['small', 'large']);
    assert.equal(raw['connection-port'], 22);
    assert.equal(raw.os, 'linux');
    assert.deepEqual(raw.tags, ['ssd']);
    // a fresh store (another process) sees it
    const again = await new StaticHostStore(zk).get('rack', 'web-1.example');
    assert.equal(again?.os, 'linux');
  });

  it('refuses a name already added (in any provider) or configured in nodepool.yaml', async () => {
    await assert.rejects(store.add(config, { provider: 'rack', name: 'web-1.example', labels: ['small'] }),
      (e: unknown) => e instanceof StaticDriverError && e.code === 'EHOSTEXISTS');
    await assert.rejects(store.add(config, { provider: 'lab', pool: 'a', name: 'web-1.example', labels: ['gpu'] }),
      (e: unknown) => e instanceof StaticDriverError && e.code === 'EHOSTEXISTS' && /provider "rack"/.test(e.message));
    await assert.rejects(store.add(config, { provider: 'lab', pool: 'a', name: 'configured-1.example', labels: ['gpu'] }),
      (e: unknown) => e instanceof StaticDriverError && /configured in provider "rack" pool "main"/.test(e.message));
  });

  it('reports every problem of a bad definition at once', async () => {
    await assert.rejects(store.add(config, {
      provider: 'lab', name: 'bad host', labels: ['nope', 'small'], connectionPort: 70000, connectionType: 'telnet',
      maxParallelJobs: 0, hostKey: 'garbage',
    }), (e: unknown) => {
      assert.ok(e instanceof StaticHostValidationError);
      const text = e.problems.join('\n');
      assert.match(text, /invalid host name/);
      assert.match(text, /provider lab has 2 pools; name one/);
      assert.match(text, /label "nope" is not defined/);
      assert.match(text, /connection-type "telnet"/);
      assert.match(text, /connection-port 70000/);
      assert.match(text, /max-parallel-jobs 0/);
      assert.match(text, /host-key "garbage"/);
      // each problem names its field by the nodepool.yaml key (the web API reports them so)
      assert.deepEqual([...new Set(e.issues.map((i) => i.field))].sort(),
        ['connection-port', 'connection-type', 'host-key', 'labels', 'max-parallel-jobs', 'name', 'pool']);
      return true;
    });
    await assert.rejects(store.add(config, { provider: 'fake-cloud', name: 'x.example', labels: ['small'] }), /uses driver fake, not static/);
    await assert.rejects(store.add(config, { provider: 'nope', name: 'x.example', labels: ['small'] }), /provider "nope" is not configured/);
    await assert.rejects(store.add(config, { provider: 'lab', pool: 'a', name: 'x.example', labels: ['small'] }),
      /label "small" is not offered by pool a \(it offers: gpu\)/);
  });

  it('lists, filters by provider/os/tags, and removes', async () => {
    await store.add(config, { provider: 'lab', pool: 'b', name: 'lab-9.example', labels: ['gpu'], os: 'Linux', tags: ['cuda', 'big'], hostKey: KEY });
    await store.add(config, { provider: 'lab', pool: 'a', name: 'lab-8.example', labels: ['gpu'], os: 'windows', connectionType: 'winrm', connectionPort: 5986 });
    const all = await store.list();
    assert.deepEqual(all.map((h) => `${h.provider}/${h.name}`), ['lab/lab-8.example', 'lab/lab-9.example', 'rack/web-1.example']);
    assert.deepEqual((await store.list('lab')).map((h) => h.name), ['lab-8.example', 'lab-9.example']);
    assert.deepEqual(filterHosts(all, { os: 'linux' }).map((h) => h.name), ['lab-9.example', 'web-1.example']);
    assert.deepEqual(filterHosts(all, { tags: ['cuda'] }).map((h) => h.name), ['lab-9.example']);
    assert.deepEqual(filterHosts(all, { provider: 'rack', tags: ['cuda'] }), []);
    assert.deepEqual((await store.get('lab', 'lab-9.example'))?.hostKey, [KEY]);
    const removed = await store.remove('lab-8.example');
    assert.equal(removed.provider, 'lab');
    await assert.rejects(store.remove('lab-8.example'), (e: unknown) => e instanceof StaticDriverError && e.code === 'ENOHOST');
    await assert.rejects(store.remove('configured-1.example'), /editing it/);
  });

  it('watch reports additions and removals', async () => {
    let events = 0;
    const unwatch = store.watch('rack', () => { events++; });
    try {
      await new Promise((r) => setTimeout(r, 100));
      await store.add(config, { provider: 'rack', name: 'web-2.example', labels: ['small'] });
      await waitFor('add seen', () => events >= 1, 5000);
      await store.remove('web-2.example', 'rack');
      await waitFor('remove seen', () => events >= 2, 5000);
    } finally {
      unwatch();
    }
  });

  it('the config loader names both pools when a host is listed twice', async () => {
    const file = env.write('dup.yaml', `${env.zkYaml}
labels:
  - name: small
providers:
  - name: p1
    driver: static
    pools:
      - name: first
        nodes:
          - name: twice.example
            labels: small
  - name: p2
    driver: static
    pools:
      - name: second
        nodes:
          - name: twice.example
            labels: small
`);
    await assert.rejects(loadConfig(file), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /"twice\.example" is already defined in provider "p1" pool "first"/);
      assert.match(e.message, /provider "p2" pool "second"/);
      return true;
    });
  });
});
