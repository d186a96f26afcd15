// Loading good configurations: typed values, the defaults of the §5 tables, secure-file merge,
// state dir rules, samples in etc/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ConfigError, loadConfig, resolveStateDir, validateConfig,
  type CloudPool, type FakeProvider, type MetastaticProvider, type OpenStackProvider, type Provider, type StaticProvider,
} from '../src/config/index.js';
import { fixture, FIXTURES, isolatedEnv, REPO, tempDir } from './config-helpers.js';

function provider<D extends Provider['driver']>(p: Provider | undefined, driver: D): Extract<Provider, { driver: D }> {
  assert.ok(p, 'provider exists');
  assert.equal(p.driver, driver);
  return p as Extract<Provider, { driver: D }>;
}

function pool(p: OpenStackProvider | FakeProvider, name: string): CloudPool {
  const found = p.pools.find((x) => x.name === name);
  assert.ok(found, `pool ${name}`);
  return found;
}

const CLOUDS = fixture('clouds.yaml');

test('a production Nodepool 3.x file loads unchanged (openstack, fake, static)', async () => {
  const c = await loadConfig(fixture('nodepool-3x.yaml'), { cloudsFile: CLOUDS, env: isolatedEnv() });
  assert.equal(c.file, fixture('nodepool-3x.yaml'));
  assert.deepEqual(c.zookeeperServers, [
    { host: 'zk01.example.org', port: 2181, chroot: '/nodepool' },
    { host: 'zk02.example.org', port: 2181, chroot: '/nodepool' },
    { host: 'zk03.example.org', port: 2181, chroot: null },
  ]);
  assert.deepEqual(c.webapp, { port: 8005, listenAddress: '0.0.0.0', leases: {} });
  assert.equal(c.elementsDir, '/etc/nodepool/elements');
  assert.equal(c.imagesDir, '/opt/nodepool_dib');
  assert.equal(c.buildLogDir, '/var/log/nodepool/builds');
  assert.equal(c.buildLogRetention, 3);
  assert.equal(c.maxHoldAge, 86400);
  assert.equal(c.databaseUri, null);
  assert.deepEqual(c.cron, { cleanup: null, check: null, imageUpdate: null });

  assert.deepEqual([...c.labels.keys()],
    ['ubuntu-bionic', 'centos-7', 'fedora-28', 'windows-2016', 'fake-label', 'static-arm64', 'static-bare']);
  assert.deepEqual(c.labels.get('ubuntu-bionic'), { name: 'ubuntu-bionic', minReady: 5, maxReadyAge: 3600, readyScript: null });
  assert.deepEqual(c.labels.get('fedora-28'), { name: 'fedora-28', minReady: 0, maxReadyAge: 0, readyScript: null });
  assert.equal(c.labels.get('windows-2016')?.minReady, -1);

  const bionic = c.diskimages.get('ubuntu-bionic');
  assert.ok(bionic);
  assert.equal(bionic.release, 'bionic');
  assert.equal(bionic.rebuildAge, 43200);
  assert.equal(bionic.buildTimeout, 28800);
  assert.equal(bionic.username, 'zuul');
  assert.equal(bionic.pause, false);
  assert.equal(bionic.envVars.DIB_CHECKSUM, '1');
  // no formats of its own: the upload formats of the clouds it goes to (citycloud raw, fake qcow2)
  assert.deepEqual(bionic.formats, ['raw', 'qcow2']);
  const centos = c.diskimages.get('centos-7');
  assert.ok(centos);
  assert.equal(centos.release, '7', 'release: 7 becomes the string "7" (DIB_RELEASE)');
  assert.equal(centos.username, 'centos');
  assert.equal(centos.buildTimeout, 7200);
  assert.deepEqual(centos.formats, ['raw', 'qcow2']);

  const os = provider(c.providers.get('citycloud-kna1'), 'openstack');
  assert.equal(os.cloud, 'citycloud');
  assert.equal(os.regionName, 'Kna1');
  assert.equal(os.bootTimeout, 120);
  assert.equal(os.launchTimeout, 1800);
  assert.equal(os.launchRetries, 5);
  assert.equal(os.rate, 0.01);
  assert.equal(os.maxConcurrency, 10);
  assert.equal(os.cleanFloatingIps, true);
  assert.equal(os.imageFormat, 'raw');
  assert.equal(os.cloudConfig.authUrl, 'https://kna1.citycloud.com:5000/v3/');
  assert.deepEqual(os.diskimages, [
    { name: 'ubuntu-bionic', pause: false, configDrive: true, connectionType: 'ssh', connectionPort: 22,
      meta: { hw_disk_bus: 'scsi', hw_scsi_model: 'virtio-scsi' } },
    { name: 'centos-7', pause: true, configDrive: null, connectionType: 'ssh', connectionPort: 22, meta: {} },
  ]);
  assert.deepEqual(os.cloudImages, [
    { name: 'windows-2016-gold', configDrive: null, imageId: null, imageName: 'Windows Server 2016 Std',
      username: 'Administrator', connectionType: 'winrm', connectionPort: 5986, externalName: 'Windows Server 2016 Std',
      pythonPath: null, shellType: null },
    { name: 'fedora-cloud', configDrive: false, imageId: '6f3ee3a4-3c32-4b9e-9c2d-8b6e1b9b0c1e', imageName: null,
      username: null, connectionType: 'ssh', connectionPort: 22, externalName: '6f3ee3a4-3c32-4b9e-9c2d-8b6e1b9b0c1e',
      pythonPath: null, shellType: null },
  ]);
  const main = pool(os, 'main');
  assert.equal(main.maxServers, 60);
  assert.equal(main.maxCores, 400);
  assert.equal(main.maxRam, 819200);
  assert.deepEqual(main.availabilityZones, ['nova']);
  assert.deepEqual(main.networks, ['public', 'private-net']);
  assert.deepEqual(main.securityGroups, ['zuul-nodes']);
  assert.equal(main.autoFloatingIp, false);
  assert.equal(main.hostKeyChecking, true, 'YAML 1.1: `yes` is true, as for PyYAML');
  assert.deepEqual(main.nodeAttributes, { 'executor-zone': 'kna1' });
  assert.deepEqual(main.labels[0], {
    name: 'ubuntu-bionic', diskimage: 'ubuntu-bionic', cloudImage: null, minRam: 8192, flavorName: 'v1-standard-4',
    keyName: 'infra-root-keys', consoleLog: true, bootFromVolume: false, volumeSize: 50, instanceProperties: {}, dynamicInstanceProperties: {},
    userdata: null,
  });
  assert.equal(main.labels[1]?.minRam, null);
  assert.equal(main.labels[1]?.volumeSize, 80);
  assert.deepEqual(main.labels[2]?.instanceProperties, { zuul_node: 'true', owner: 'infra' });
  assert.equal(main.labels[2]?.userdata, '#cloud-config\npackage_upgrade: false\n');
  const windows = pool(os, 'windows');
  assert.equal(windows.maxCores, Infinity);
  assert.equal(windows.maxRam, Infinity);
  assert.equal(windows.ignoreProviderQuota, true);
  assert.deepEqual(windows.availabilityZones, []);
  assert.equal(windows.autoFloatingIp, true);
  assert.equal(windows.nodeAttributes, null);

  const fake = provider(c.providers.get('fake-provider'), 'fake');
  assert.equal(fake.cloud, 'fake');
  assert.equal(fake.rate, 0.0001);
  assert.equal(fake.hostnameFormat, '{label.name}-{provider.name}-{node.id}');
  assert.equal(fake.imageNameFormat, '{image_name}-{timestamp}');
  assert.equal(fake.maxConcurrency, -1);
  assert.equal(pool(fake, 'main').maxServers, 96);

  const st = provider(c.providers.get('static-rack'), 'static');
  assert.equal(st.maxConcurrency, 2);
  const [sMain, sLegacy] = st.pools;
  assert.ok(sMain && sLegacy);
  assert.equal(sMain.maxServers, 4);
  assert.deepEqual(sMain.labels, [{ name: 'static-arm64' }, { name: 'static-bare' }]);
  assert.deepEqual(sMain.nodes[0], {
    name: 'arm01.example.org', labels: ['static-arm64'], username: 'zuul-worker', timeout: 13,
    hostKey: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIArm01', 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABArm01'],
    connectionPort: 22022, connectionType: 'ssh', maxParallelJobs: 2, hostKeyChecking: true, pythonPath: null, shellType: null,
  });
  assert.deepEqual(sMain.nodes[1], {
    name: '198.51.100.7', labels: ['static-arm64', 'static-bare'], username: 'zuul', timeout: 5,
    hostKey: ['ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABStatic'], connectionPort: 22, connectionType: 'ssh', maxParallelJobs: 1,
    hostKeyChecking: true, pythonPath: null, shellType: null,
  });
  assert.equal(sMain.nodes[2]?.connectionPort, 22, 'static winrm nodes default to 22 like Nodepool');
  assert.equal(sLegacy.maxServers, Infinity);
  assert.equal(sLegacy.nodes[0]?.connectionPort, 2222, 'ssh-port is the deprecated alias of connection-port');

  assert.deepEqual([...c.clouds.keys()].sort(), ['citycloud', 'fake']);
  assert.equal(c.cloudsFile, CLOUDS);
  assert.equal(c.secureFile, null);
});

test('config-validate accepts the production file without any clouds.yaml', async () => {
  assert.deepEqual(await validateConfig(fixture('nodepool-3x.yaml'), { env: isolatedEnv() }), []);
});

test('defaults of a minimal file', async () => {
  const dir = tempDir({ 'nodepool.yaml': 'labels:\n  - name: l\n' });
  const c = await loadConfig(join(dir, 'nodepool.yaml'), { env: isolatedEnv() });
  assert.deepEqual(c.zookeeperServers, []);
  assert.equal(c.zookeeperTimeoutMs, 10_000, "Nodepool's default session timeout");
  assert.equal(c.tenantResourceLimits.size, 0);
  assert.deepEqual(c.webapp, { port: 8005, listenAddress: '127.0.0.1', leases: {} }, 'nodepool-ts listens on loopback by default');
  assert.equal(c.elementsDir, null);
  assert.equal(c.imagesDir, null);
  assert.equal(c.buildLogRetention, 7);
  assert.equal(c.maxHoldAge, Infinity);
  assert.equal(c.stateDir, join(dir, 'state'));
  assert.equal(c.buildLogDir, join(dir, 'state', 'builds'), 'outside /etc build logs go to the state dir');
  assert.equal(c.providers.size, 0);
  assert.equal(c.diskimages.size, 0);
  assert.equal(c.privateKey, null);
  assert.equal(c.scriptDir, null);
  assert.equal(c.cloudsFile, null);
});

test('zookeeper-tls: paths relative to the file that names them; the secure file\'s wins; none = plain TCP', async () => {
  const dir = tempDir({
    'n.yaml': 'zookeeper-tls:\n  cert: tls/client.pem\n  key: /etc/zk/client.key\n  ca: ../ca.pem\n',
    'plain.yaml': 'zookeeper-servers:\n  - host: zk1\n',
    'sec/secure.yaml': 'zookeeper-tls:\n  cert: c.pem\n  key: c.key\n  ca: ca.pem\n',
  });
  const main = await loadConfig(join(dir, 'n.yaml'), { env: isolatedEnv() });
  assert.deepEqual(main.zookeeperTls, { cert: join(dir, 'tls/client.pem'), key: '/etc/zk/client.key', ca: join(dir, '../ca.pem') });
  const secured = await loadConfig(join(dir, 'n.yaml'), { env: isolatedEnv(), secureFile: join(dir, 'sec/secure.yaml') });
  assert.deepEqual(secured.zookeeperTls, { cert: join(dir, 'sec/c.pem'), key: join(dir, 'sec/c.key'), ca: join(dir, 'sec/ca.pem') });
  assert.equal((await loadConfig(join(dir, 'plain.yaml'), { env: isolatedEnv() })).zookeeperTls, null);
});

test('%(NODEPOOL_*) in the config and the secure file is replaced by the environment variable (Nodepool 3.14+)', async () => {
  const dir = tempDir({
    'n.yaml': 'zookeeper-servers:\n  - host: "%(NODEPOOL_ZK_HOST)"\n    port: %(NODEPOOL_ZK_PORT)\nlabels:\n  - name: l-%(NODEPOOL_ZK_HOST)\n    min-ready: 0\n',
    'secure.yaml': 'dburi: mysql://np:%(NODEPOOL_DB_PASSWORD)@db/np\n',
  });
  const c = await loadConfig(join(dir, 'n.yaml'), {
    env: isolatedEnv({ NODEPOOL_ZK_HOST: 'zk7', NODEPOOL_ZK_PORT: '2281', NODEPOOL_DB_PASSWORD: 's3cret', OTHER: 'x' }),
    secureFile: join(dir, 'secure.yaml'),
  });
  assert.deepEqual(c.zookeeperServers, [{ host: 'zk7', port: 2281, chroot: null }]);
  assert.deepEqual([...c.labels.keys()], ['l-zk7']);
  assert.equal(c.databaseUri, 'mysql://np:s3cret@db/np');
});

test('tenant-resource-limits: per tenant, unset limits unlimited; none by default', async () => {
  const dir = tempDir({ 'n.yaml': 'tenant-resource-limits:\n  - tenant-name: a\n    max-servers: 4\n    max-ram: 16384\n  - tenant-name: b\n    max-cores: 8\n' });
  const c = await loadConfig(join(dir, 'n.yaml'), { env: isolatedEnv() });
  assert.deepEqual([...c.tenantResourceLimits], [
    ['a', { instances: 4, cores: Infinity, ram: 16384 }],
    ['b', { instances: Infinity, cores: 8, ram: Infinity }],
  ]);
});

test('zookeeper-timeout (seconds, Nodepool 6.0+) sets the session timeout', async () => {
  const dir = tempDir({ 'n.yaml': 'zookeeper-timeout: 30.5\n' });
  assert.equal((await loadConfig(join(dir, 'n.yaml'), { env: isolatedEnv() })).zookeeperTimeoutMs, 30_500);
});

test('max-hold-age 0 or negative means unlimited', async () => {
  for (const v of ['0', '-5']) {
    const dir = tempDir({ 'n.yaml': `max-hold-age: ${v}\n` });
    assert.equal((await loadConfig(join(dir, 'n.yaml'), { env: isolatedEnv() })).maxHoldAge, Infinity);
  }
});

test('diskimage defaults; a diskimage uploaded nowhere is built as qcow2', async () => {
  const dir = tempDir({ 'n.yaml': 'diskimages:\n  - name: bare\n  - name: tarred\n    formats: [tar]\n' });
  const c = await loadConfig(join(dir, 'n.yaml'), { env: isolatedEnv() });
  assert.deepEqual(c.diskimages.get('bare'), {
    name: 'bare', elements: [], release: '', envVars: {}, formats: ['qcow2'], rebuildAge: 86400, pause: false,
    username: 'zuul', buildTimeout: 28800, deleteAfterUpload: false, keepFormats: [], pythonPath: null, shellType: null,
  });
  assert.deepEqual(c.diskimages.get('tarred')?.formats, ['tar']);
});

test('diskimage inheritance (Nodepool 3.13+): parents first, elements append, env-vars merge, abstract ones are not built', async () => {
  const dir = tempDir({ 'n.yaml': [
    'diskimages:',
    '  - name: base',
    '    abstract: true',
    '    elements: [debian-minimal, vm]',
    '    env-vars: {DIB_A: "1", DIB_B: "1"}',
    '    formats: [raw]',
    '    release: 12',
    '    rebuild-age: 3600',
    '    pause: true',
    '    delete-after-upload: true',
    '    keep-formats: [raw]',
    '    python-path: /usr/bin/python3',
    '  - name: debian',
    '    parent: base',
    '    elements: [nodepool-base]',
    '    env-vars: {DIB_B: "2"}',
    '    pause: false',
    '  - name: debian-big',
    '    parent: debian',
    '    elements: [big]',
    '    formats: [qcow2]',
    '    username: ci',
    '    delete-after-upload: false',
    '    shell-type: csh',
  ].join('\n') });
  const c = await loadConfig(join(dir, 'n.yaml'), { env: isolatedEnv() });
  assert.deepEqual([...c.diskimages.keys()], ['debian', 'debian-big'], 'the abstract base is not an image');
  assert.deepEqual(c.diskimages.get('debian'), {
    name: 'debian', elements: ['debian-minimal', 'vm', 'nodepool-base'], release: '12', envVars: { DIB_A: '1', DIB_B: '2' },
    formats: ['raw'], rebuildAge: 3600, pause: true, username: 'zuul', buildTimeout: 28800, deleteAfterUpload: true, keepFormats: ['raw'],
    pythonPath: '/usr/bin/python3', shellType: null,
  }, "pause: false does not unpause a paused parent (Nodepool's rule)");
  assert.deepEqual(c.diskimages.get('debian-big'), {
    name: 'debian-big', elements: ['debian-minimal', 'vm', 'nodepool-base', 'big'], release: '12',
    envVars: { DIB_A: '1', DIB_B: '2' }, formats: ['qcow2'], rebuildAge: 3600, pause: true, username: 'ci', buildTimeout: 28800,
    deleteAfterUpload: false, keepFormats: ['raw'], pythonPath: '/usr/bin/python3', shellType: 'csh',
  }, 'delete-after-upload: false does override (as in Nodepool)');
});

test('fake provider defaults need no clouds.yaml; min-ram 8192 matches a 4 vCPU / 8192 MB flavor', async () => {
  const dir = tempDir({
    'n.yaml': [
      'labels: [{name: fake-label}]',
      'providers:',
      '  - name: fake-provider',
      '    cloud-images: [{name: img}]',
      '    pools:',
      '      - name: main',
      '        labels: [{name: fake-label, cloud-image: img, min-ram: 8192}]',
      '',
    ].join('\n'),
  });
  const c = await loadConfig(join(dir, 'n.yaml'), { env: isolatedEnv() });
  const fake = provider(c.providers.get('fake-provider'), 'fake');
  assert.equal(fake.cloud, 'fake');
  assert.equal(fake.regionName, 'fake-region');
  assert.deepEqual(fake.azs, ['az1']);
  assert.deepEqual(fake.quota, { instances: Infinity, cores: Infinity, ram: Infinity });
  assert.deepEqual(fake.faults, {
    bootDelay: 0, createFailureRate: 0, errorRate: 0, apiErrorRate: 0, quotaExceeded: false,
    deleteFailureRate: 0, deleteDelay: 0,
  });
  assert.equal(fake.stateFile, null);
  assert.equal(fake.imageFormat, 'qcow2');
  assert.equal(fake.cloudConfig, null);
  assert.equal(fake.bootTimeout, 60);
  assert.equal(fake.launchTimeout, 3600);
  assert.equal(fake.launchRetries, 3);
  assert.equal(fake.rate, 1);
  const minRam = pool(fake, 'main').labels[0]?.minRam ?? 0;
  const flavor = fake.flavors.filter((f) => f.ram >= minRam).sort((a, b) => a.ram - b.ram)[0];
  assert.deepEqual(flavor && { vcpus: flavor.vcpus, ram: flavor.ram }, { vcpus: 4, ram: 8192 });
  assert.equal(flavor?.name, 'Fake Flavor');
});

test('fake provider extras: quota, faults (seconds in YAML, ms in Config), state file, flavors', async () => {
  const c = await loadConfig(fixture('fake-extras.yaml'), { env: isolatedEnv() });
  const fake = provider(c.providers.get('lab'), 'fake');
  assert.deepEqual(fake.azs, ['az1', 'az2', 'az3']);
  assert.deepEqual(fake.quota, { instances: 10, cores: 40, ram: Infinity });
  assert.deepEqual(fake.faults, {
    bootDelay: 250, createFailureRate: 0.1, errorRate: 0.05, apiErrorRate: 0, quotaExceeded: false,
    deleteFailureRate: 0.5, deleteDelay: 2000,
  });
  assert.equal(fake.stateFile, join(FIXTURES, 'state', 'fake-cloud.json'), 'relative to the state dir');
  assert.deepEqual(fake.flavors, [
    { name: 'small', id: 'small', vcpus: 1, ram: 1024 },
    { name: 'big', id: 'big-1', vcpus: 16, ram: 65536 },
  ]);
});

test('a provider named fake* runs the fake driver, unless another driver is explicit', async () => {
  const dir = tempDir({
    'n.yaml': [
      'labels: [{name: s}]',
      'providers:',
      '  - name: fake-cloud',
      '    driver: openstack',
      '    cloud: whatever',
      '  - name: fake-rack',
      '    driver: static',
      '    pools: [{name: p, nodes: [{name: h1, labels: s}]}]',
      '',
    ].join('\n'),
  });
  const c = await loadConfig(join(dir, 'n.yaml'), { env: isolatedEnv() });
  assert.equal(c.providers.get('fake-cloud')?.driver, 'fake');
  assert.equal(c.providers.get('fake-rack')?.driver, 'static');
});

test('secure file: zookeeper-servers replace, diskimage env-vars merge, dburi', async () => {
  const c = await loadConfig(fixture('nodepool-3x.yaml'), {
    secureFile: fixture('secure.yaml'), cloudsFile: CLOUDS, env: isolatedEnv(),
  });
  assert.deepEqual(c.zookeeperServers, [{ host: 'zk-private.example.org', port: 2281, chroot: '/nodepool-secure' }]);
  assert.deepEqual(c.diskimages.get('ubuntu-bionic')?.envVars, {
    TMPDIR: '/srv/dib_tmp',
    DIB_CHECKSUM: '1',
    DIB_IMAGE_CACHE: '/opt/dib_cache',
    QEMU_IMG_OPTIONS: 'compat=0.10',
    REG_PASSWORD: 'secret',
  });
  assert.deepEqual(c.diskimages.get('centos-7')?.envVars, { TMPDIR: '/opt/dib_tmp' });
  assert.equal(c.databaseUri, 'mysql+pymysql://nodepool:dbpass@db.example.org/nodepool');
  assert.equal(c.secureFile, fixture('secure.yaml'));
});

test('secure file: empty is allowed; an empty zookeeper list keeps the main one', async () => {
  const dir = tempDir({
    'n.yaml': 'zookeeper-servers: [{host: zk1}]\ndburi: sqlite:///tmp/np.db\n',
    'empty.yaml': '# nothing here\n',
    'nozk.yaml': 'zookeeper-servers: []\ndatabase: mysql://np:pw@db/np\n',
  });
  const a = await loadConfig(join(dir, 'n.yaml'), { secureFile: join(dir, 'empty.yaml'), env: isolatedEnv() });
  assert.deepEqual(a.zookeeperServers, [{ host: 'zk1', port: 2181, chroot: null }]);
  assert.equal(a.databaseUri, 'sqlite:///tmp/np.db');
  const b = await loadConfig(join(dir, 'n.yaml'), { secureFile: join(dir, 'nozk.yaml'), env: isolatedEnv() });
  assert.deepEqual(b.zookeeperServers, [{ host: 'zk1', port: 2181, chroot: null }]);
  assert.equal(b.databaseUri, 'mysql://np:pw@db/np', 'the secure file database wins');
});

test('seed-era keys are accepted: cron, ready-script, database, private-key, script-dir, state-dir', async () => {
  const c = await loadConfig(fixture('seed-era.yaml'), { env: isolatedEnv() });
  assert.deepEqual(c.cron, { cleanup: '27 */6 * * *', check: '*/15 * * * *', imageUpdate: '14 2 * * *' });
  assert.equal(c.labels.get('fake-label')?.readyScript, 'configure_mirror.sh');
  assert.equal(c.databaseUri, 'sqlite:///var/lib/nodepool/nodepool.db');
  assert.equal(c.scriptDir, join(FIXTURES, 'scripts'), 'relative to the config file');
  assert.equal(c.privateKey, join(FIXTURES, 'keys', 'id_rsa'));
  assert.equal(c.stateDir, '/srv/nodepool-state');
  assert.equal(c.buildLogDir, '/srv/nodepool-state/builds');
});

test('state dir: env NODEPOOL_STATE_DIR > state-dir key > /var/lib/nodepool under /etc > <config dir>/state', async () => {
  assert.equal(resolveStateDir('/etc/nodepool/nodepool.yaml', undefined, {}), '/var/lib/nodepool');
  assert.equal(resolveStateDir('/srv/np/nodepool.yaml', undefined, {}), '/srv/np/state');
  assert.equal(resolveStateDir('/etc/nodepool/nodepool.yaml', 'st', {}), '/etc/nodepool/st');
  assert.equal(resolveStateDir('/etc/nodepool/nodepool.yaml', '/data', { NODEPOOL_STATE_DIR: '/run/np' }), '/run/np');
  const dir = tempDir({ 'n.yaml': 'images-dir: imgs\nstate-dir: var\n' });
  const c = await loadConfig(join(dir, 'n.yaml'), { env: isolatedEnv({ NODEPOOL_STATE_DIR: join(dir, 'override') }) });
  assert.equal(c.stateDir, join(dir, 'override'));
  assert.equal(c.imagesDir, join(dir, 'override', 'imgs'), 'relative data dirs follow the state dir');
  const d = await loadConfig(join(dir, 'n.yaml'), { env: isolatedEnv() });
  assert.equal(d.stateDir, join(dir, 'var'));
});

test('a config that vanishes for a moment (being rewritten) is retried', async () => {
  const dir = tempDir({ 'next.yaml': 'labels: [{name: a}]\n' });
  const file = join(dir, 'nodepool.yaml');
  const loading = loadConfig(file, { env: isolatedEnv() });
  await new Promise((r) => setTimeout(r, 200));
  await rename(join(dir, 'next.yaml'), file);
  assert.deepEqual([...(await loading).labels.keys()], ['a']);
});

test('a missing config file fails after the retries with a clear error', async () => {
  const started = Date.now();
  await assert.rejects(loadConfig('/nonexistent/nodepool.yaml', { env: isolatedEnv() }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.code, 'ECONFIG');
    assert.equal(err.message, '/nonexistent/nodepool.yaml: file not found');
    return true;
  });
  assert.ok(Date.now() - started >= 900, 'three attempts 0.5 s apart');
});

test('drivers nodepool-ts cannot run: config-validate accepts them, loading rejects them', async () => {
  assert.deepEqual(await validateConfig(fixture('other-drivers.yaml')), []);
  await assert.rejects(loadConfig(fixture('other-drivers.yaml'), { env: isolatedEnv() }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(err.issues.map((i) => `${i.line}:${i.keyPath}`),
      ['15:providers[0].driver', '30:providers[1].driver', '45:providers[2].driver']);
    assert.match(err.issues[0]?.message ?? '', /driver "kubernetes" of provider "kube-cluster" is not supported by nodepool-ts yet/);
    return true;
  });
});

test('etc/ samples: the demo and the commented production example', async () => {
  const demo = await loadConfig(join(REPO, 'etc/demo/nodepool.yaml'), { env: isolatedEnv({ NODEPOOL_STATE_DIR: '/tmp/np-demo' }) });
  const fake = provider(demo.providers.get('fake-provider'), 'fake');
  assert.deepEqual(fake.pools.map((p) => p.name), ['main']);
  assert.deepEqual([...demo.labels.values()].map((l) => [l.name, l.minReady]), [['fake-label', 2], ['fake-label2', 1]]);
  assert.equal(demo.imagesDir, '/tmp/np-demo/images');
  assert.equal(demo.buildLogDir, '/tmp/np-demo/builds');
  assert.deepEqual(demo.zookeeperServers, [{ host: '127.0.0.1', port: 2181, chroot: null }]);

  const prodFile = join(REPO, 'etc/nodepool.yaml');
  const secure = join(REPO, 'etc/secure.conf');
  assert.deepEqual(await validateConfig(prodFile, { secureFile: secure }), []);
  const prod = await loadConfig(prodFile, { secureFile: secure, cloudsFile: join(REPO, 'etc/clouds.yaml'), env: isolatedEnv() });
  const os = provider(prod.providers.get('mycloud-region1'), 'openstack');
  assert.equal(os.cloudConfig.name, 'mycloud');
  const st = provider(prod.providers.get('lab-static'), 'static') as StaticProvider;
  assert.equal(st.pools[0]?.nodes.length, 2);
  const meta = provider(prod.providers.get('mycloud-shared'), 'metastatic') as MetastaticProvider;
  assert.deepEqual(meta.pools[0]?.labels, [{
    name: 'ubuntu-bionic-1x', backingLabel: 'ubuntu-bionic-8x', maxParallelJobs: 4, graceTime: 600,
    minRetentionTime: 3600, maxAge: 86400, hostKeyChecking: false,
  }]);
  assert.ok(prod.diskimages.get('ubuntu-bionic')?.elements.includes('nodepool-base'));
  assert.equal(prod.diskimages.get('centos-7')?.envVars.REG_PASSWORD, 'change-me');
  assert.equal(prod.zookeeperServers.length, 3);
});
