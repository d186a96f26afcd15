// The real thing: nodepool-builder runs Debian's disk-image-create on `debian-minimal nodepool-base`
// (bookworm from the apt mirror this machine uses, see scripts/dib-env.sh), the image is checked
// from the inside (debugfs on the raw ext4 filesystem: the CI user, its key, sudoers,
// /etc/nodepool), and uploaded to the fake cloud. Takes ~5 minutes cold, ~3 warm (the DIB cache
// in ~/.cache/image-create, or $NODEPOOL_TEST_DIB_CACHE, is kept between runs).
// NODEPOOL_SKIP_REAL_DIB=1 skips it (it is part of CI: do not set it there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configureLogging } from '@nodepool-ts/core/log';
import { ZooKeeper } from '@nodepool-ts/core/zk';
import { Builder } from '@nodepool-ts/builder';
import { FakeProviderManager } from '@nodepool-ts/driver-fake';

configureLogging({ level: (process.env.NODEPOOL_TEST_LOG_LEVEL as 'info' | undefined) ?? 'silent' });

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ZK = process.env.NODEPOOL_TEST_ZK ?? '127.0.0.1:21810';
const SKIP = process.env.NODEPOOL_SKIP_REAL_DIB === '1' ? 'NODEPOOL_SKIP_REAL_DIB=1' : false;

function md5(file: string): Promise<string> {
  return new Promise((res, rej) => {
    const h = createHash('md5');
    createReadStream(file).on('data', (c) => h.update(c)).on('error', rej).on('end', () => res(h.digest('hex')));
  });
}

/** A file of the image's ext4 filesystem, read without mounting it. */
function imageFile(image: string, path: string): string {
  const r = spawnSync('debugfs', ['-R', `cat ${path}`, image], { encoding: 'utf8' });
  return r.stdout;
}

function imageStat(image: string, path: string): string {
  return spawnSync('debugfs', ['-R', `stat ${path}`, image], { encoding: 'utf8' }).stdout;
}

test('a real disk-image-create build of debian-minimal + nodepool-base, uploaded to the fake cloud', { skip: SKIP, timeout: 45 * 60_000 }, async (t) => {
  assert.ok(existsSync('/usr/bin/disk-image-create') || spawnSync('sh', ['-c', 'command -v disk-image-create']).status === 0,
    'disk-image-create is not installed: run scripts/setup.sh (python3-diskimage-builder)');
  const dir = mkdtempSync(join(tmpdir(), 'np-real-dib-'));
  const chroot = `/t-${randomBytes(6).toString('hex')}`;
  const [host = '127.0.0.1', port = '2181'] = ZK.split(':');
  const ssh = join(dir, 'ssh');
  mkdirSync(ssh);
  execFileSync('ssh-keygen', ['-q', '-N', '', '-t', 'ed25519', '-C', 'nodepool-ts-real-dib', '-f', join(ssh, 'id_ed25519')]);
  const pubkey = readFileSync(join(ssh, 'id_ed25519.pub'), 'utf8');
  const dibEnv = JSON.parse(execFileSync('bash', [join(REPO, 'scripts', 'dib-env.sh'), '--json', '--release', 'bookworm'], { encoding: 'utf8' })) as Record<string, string>;
  const envVars: Record<string, string> = { ...dibEnv, DIB_NODEPOOL_SSH_PUBLIC_KEY: join(ssh, 'id_ed25519.pub') };
  if (process.env.NODEPOOL_TEST_DIB_CACHE) envVars.DIB_IMAGE_CACHE = process.env.NODEPOOL_TEST_DIB_CACHE;
  const cloudsFile = join(dir, 'clouds.yaml');
  // the fake cloud takes raw images: no qemu-img conversion pass in the build
  writeFileSync(cloudsFile, 'clouds:\n  real-dib-fake:\n    image_format: raw\n');
  const images = join(dir, 'images');
  const logs = join(dir, 'logs');
  const cloudFile = join(dir, 'cloud.json');
  const configFile = join(dir, 'nodepool.yaml');
  writeFileSync(configFile, [
    'zookeeper-servers:', `  - host: ${host}`, `    port: ${port}`, `    chroot: ${chroot}`,
    `images-dir: ${images}`, `build-log-dir: ${logs}`, 'labels: []',
    'diskimages:', '  - name: debian-bookworm', '    elements: [debian-minimal, nodepool-base]', '    release: bookworm',
    '    formats: [raw]', '    build-timeout: 2400', '    env-vars:',
    ...Object.entries(envVars).map(([k, v]) => `      ${k}: ${JSON.stringify(v)}`),
    'providers:', '  - name: fake-provider', '    driver: fake', '    cloud: real-dib-fake', '    rate: 0.0001',
    `    state-file: ${cloudFile}`, '    diskimages:', '      - name: debian-bookworm',
    '    pools:', '      - name: main', '        max-servers: 1', '        labels: []', '',
  ].join('\n'));

  const cacheDir = envVars.DIB_IMAGE_CACHE ?? join(process.env.HOME ?? '/root', '.cache', 'image-create');
  const warm = existsSync(join(cacheDir, 'debootstrap-debian-bookworm-amd64.tar.gz'));
  const builder = new Builder({
    configFile, buildIntervalMs: 500, uploadIntervalMs: 500, cleanupIntervalMs: 60_000, errorBackoffMs: 1000,
    env: { ...process.env, OS_CLIENT_CONFIG_FILE: cloudsFile }, connectTimeoutMs: 10_000,
  });
  const zk = new ZooKeeper({ servers: [{ host, port: Number(port), chroot }], connectTimeoutMs: 10_000 });
  const steps = new Set<string>();
  try {
    await zk.connect();
    const started = Date.now();
    await builder.start();
    let build = null;
    let lastProgress = '';
    while (Date.now() - started < 40 * 60_000) {
      build = await zk.getBuild('debian-bookworm', '0000000001');
      const p = await zk.getBuildProgress('debian-bookworm', '0000000001');
      if (typeof p?.step === 'string' && p.step !== lastProgress) {
        lastProgress = p.step;
        steps.add(p.step);
      }
      if (build?.state === 'ready' || build?.state === 'failed') break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const buildSeconds = (Date.now() - started) / 1000;
    const progress = await zk.getBuildProgress('debian-bookworm', '0000000001');
    const logFile = join(logs, 'debian-bookworm-0000000001.log');
    assert.equal(build?.state, 'ready', `build failed: ${String(progress?.reason)}; log ${logFile}:\n${existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n') : ''}`);
    t.diagnostic(`real DIB build: ${buildSeconds.toFixed(0)} s (${warm ? 'warm' : 'cold'} cache ${cacheDir})`);
    assert.deepEqual(build?.formats, ['raw']);
    assert.match(readFileSync(logFile, 'utf8'), /Build completed successfully\nExit code: 0\n$/);

    // live progress named phases, scripts and the elements they come from
    // (nodepool-base's own scripts take milliseconds: too quick for a 250 ms poll to see reliably)
    assert.ok([...steps].some((s) => /^root\.d\/08-debootstrap \(debootstrap\)$/.test(s)), [...steps].join('\n'));
    assert.ok([...steps].some((s) => /^install\.d\/\S+ \(\S+\)$/.test(s)), [...steps].join('\n'));
    assert.equal(progress?.state, 'ready');

    // the files Nodepool names, checksums that match
    const raw = join(images, 'debian-bookworm-0000000001.raw');
    assert.ok(existsSync(join(images, 'debian-bookworm-0000000001.d')), 'manifest dir');
    const sum = readFileSync(`${raw}.md5`, 'utf8').slice(0, 32);
    assert.equal(sum, await md5(raw));
    assert.match(readFileSync(`${raw}.sha256`, 'utf8'), /^[0-9a-f]{64}/);

    // inside the image: nodepool-base did its job
    assert.equal(imageFile(raw, '/home/zuul/.ssh/authorized_keys'), pubkey);
    assert.match(imageStat(raw, '/home/zuul/.ssh/authorized_keys'), /Mode:\s+0600/);
    assert.match(imageFile(raw, '/etc/passwd'), /^zuul:x:\d+:\d+::\/home\/zuul:\/bin\/bash$/m);
    assert.equal(imageFile(raw, '/etc/sudoers.d/50-nodepool-zuul'), 'zuul ALL=(ALL) NOPASSWD:ALL\n');
    assert.match(imageStat(raw, '/etc/nodepool'), /Type: directory\s+Mode:\s+0777/);
    assert.match(imageStat(raw, '/usr/sbin/sshd'), /Type: regular/);

    // uploaded to the fake cloud
    let upload = null;
    for (let i = 0; i < 600 && upload === null; i++) {
      upload = (await zk.getImageUploads('debian-bookworm', '0000000001', 'fake-provider', ['ready']))[0] ?? null;
      if (upload === null) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(upload, 'ready upload');
    assert.equal(upload.format, 'raw');
    const cloudCfg = { ...FAKE_CLOUD, stateFile: cloudFile };
    const cloud = new FakeProviderManager(cloudCfg);
    await cloud.start();
    const img = (await cloud.listImages()).find((i) => i.id === upload?.external_id);
    await cloud.stop();
    assert.ok(img, 'image in the fake cloud');
    assert.equal(img.checksum, sum);
    assert.equal(img.size, statSync(raw).size);
    assert.equal(img.format, 'raw');
    assert.equal(img.metadata.nodepool_build_id, '0000000001');
  } finally {
    await builder.stop();
    try {
      await zk.deleteRecursive(chroot);
    } catch {
      // best effort
    }
    await zk.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

const FAKE_CLOUD = {
  driver: 'fake' as const, name: 'fake-provider', maxConcurrency: -1, priority: null, postUploadHook: null, imageUploadTimeout: 3600, launchCircuitBreaker: null, cloud: 'real-dib-fake', regionName: null,
  bootTimeout: 60, launchTimeout: 3600, launchRetries: 3, rate: 0.0001, hostnameFormat: '{label.name}-{provider.name}-{node.id}',
  imageNameFormat: '{image_name}-{timestamp}', imageFormat: 'raw', cloudConfig: null, diskimages: [], cloudImages: [], pools: [],
  azs: ['az1'], quota: { instances: Infinity, cores: Infinity, ram: Infinity },
  faults: { bootDelay: 0, createFailureRate: 0, errorRate: 0, apiErrorRate: 0, quotaExceeded: false, deleteFailureRate: 0, deleteDelay: 0 },
  stateFile: '', flavors: [],
};
