// `zookeeper-tls`: every part of nodepool-ts talks to a ZooKeeper that accepts TLS clients only
// (secureClientPort, client certificates required, as Zuul 4+ and Nodepool 4+ deployments run it),
// next to kazoo speaking TLS as Zuul does. A private TLS ZooKeeper from scripts/zk.sh start-tls.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lock, ZkConnectError, ZkTlsError, ZooKeeper } from '@nodepool-ts/core/zk';
import type { ZooKeeperTls } from '@nodepool-ts/core/config';
import { fakeConfig, testEnv, uniqueChroot, waitFor, type TestEnv } from '../helpers/harness.js';

let dir = '';
let host = '127.0.0.1';
let port = 0;
let tls: ZooKeeperTls;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'np-zk-tls-'));
  const hp = execFileSync('bash', ['scripts/zk.sh', 'start-tls', join(dir, 'zk')], { encoding: 'utf8' }).trim();
  [host, port] = [hp.split(':')[0] ?? '127.0.0.1', Number(hp.split(':')[1])];
  const t = join(dir, 'zk', 'tls');
  tls = { cert: join(t, 'client.pem'), key: join(t, 'client.key'), ca: join(t, 'ca.pem') };
});

after(() => {
  execFileSync('bash', ['scripts/zk.sh', 'stop', join(dir, 'zk')]);
  rmSync(dir, { recursive: true, force: true });
});

/** A CA of nobody's, and a client certificate it signed. */
function strangerPki(): { ca: string; cert: string; key: string } {
  const d = mkdtempSync(join(dir, 'stranger-'));
  const ossl = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  ossl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=stranger CA', '-keyout', `${d}/ca.key`, '-out', `${d}/ca.pem`]);
  ossl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=stranger', '-keyout', `${d}/c.key`, '-out', `${d}/c.csr`]);
  ossl(['x509', '-req', '-in', `${d}/c.csr`, '-CA', `${d}/ca.pem`, '-CAkey', `${d}/ca.key`, '-CAcreateserial', '-days', '1', '-out', `${d}/c.pem`]);
  return { ca: `${d}/ca.pem`, cert: `${d}/c.pem`, key: `${d}/c.key` };
}

async function failedConnect(opts: { tls?: ZooKeeperTls; server?: string }): Promise<ZkConnectError> {
  const zk = new ZooKeeper({ servers: [{ host: opts.server ?? host, port, chroot: null }], connectTimeoutMs: 3000, tls: opts.tls });
  const err = await zk.connect().then(() => null, (e: unknown) => e);
  await zk.close();
  assert.ok(err instanceof ZkConnectError, `expected a failed connect, got ${String(err)}`);
  return err;
}

function kazoo(script: string, hosts: string): string {
  return execFileSync('/usr/bin/python3', ['-c', `
import sys
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1], use_ssl=True, certfile=sys.argv[2], keyfile=sys.argv[3], ca=sys.argv[4])
zk.start(timeout=15)
${script}
zk.stop()
`, hosts, tls.cert, tls.key, tls.ca], { encoding: 'utf8' });
}

test('the ZooKeeper client works over TLS, beside kazoo over TLS; a plain client gets nowhere', async () => {
  const chroot = uniqueChroot();
  const zk = new ZooKeeper({ servers: [{ host, port, chroot }], connectTimeoutMs: 10_000, tls });
  try {
    await zk.connect();
    assert.equal(zk.usesTls, true);
    const seq = await zk.create('/nodepool/requests/100-', Buffer.from('{"state":"requested"}'), 'persistent_sequential');
    const lock = new Lock(zk, '/nodepool/requests-lock/x');
    assert.equal(await lock.acquire({ blocking: false, createParent: true }), true);
    const seen = kazoo(`print(zk.get(sys.argv[5])[0].decode(), sorted(zk.get_children('/nodepool/requests-lock/x')) != [])
zk.create('/from-kazoo', b'over tls')`.replace('sys.argv[5]', JSON.stringify(seq)), `${host}:${port}${chroot}`);
    assert.equal(seen.trim(), '{"state":"requested"} True');
    assert.equal((await zk.getData('/from-kazoo'))?.toString(), 'over tls');
    await lock.release();
  } finally {
    await zk.close();
  }
  // the TLS port does not speak plain ZooKeeper
  const plain = await failedConnect({});
  assert.match(plain.message, /^could not connect to ZooKeeper at 127\.0\.0\.1:\d+ within 3s/);
});

test('a session over TLS survives a restart of the server: the client reconnects over TLS', async () => {
  const zk = new ZooKeeper({ servers: [{ host, port, chroot: uniqueChroot() }], connectTimeoutMs: 10_000, sessionTimeoutMs: 20_000, tls });
  try {
    await zk.connect();
    await zk.create('/mine', Buffer.from('1'), 'ephemeral');
    const states: string[] = [];
    zk.on('state', (s: string) => states.push(s));
    execFileSync('bash', ['scripts/zk.sh', 'stop', join(dir, 'zk')]);
    await waitFor('suspended', () => states.includes('suspended'), 10_000);
    assert.equal(execFileSync('bash', ['scripts/zk.sh', 'start-tls', join(dir, 'zk')], { encoding: 'utf8' }).trim(), `${host}:${port}`);
    assert.equal(await zk.waitConnected(15_000), true);
    assert.deepEqual(states, ['suspended', 'connected'], 'the same session resumed, not a new one');
    assert.equal((await zk.getData('/mine'))?.toString(), '1', 'the ephemeral of the session is still there');
  } finally {
    await zk.close();
  }
});

test('a server certificate the CA did not sign, or a client certificate the server does not trust, is named as such', async () => {
  const stranger = strangerPki();
  const wrongCa = await failedConnect({ tls: { ...tls, ca: stranger.ca } });
  assert.match(wrongCa.message, /\(TLS\) within 3s: the server's TLS certificate is not accepted \(checked against zookeeper-tls\.ca\)/);
  assert.match(wrongCa.reason ?? '', /unable to verify/);
  const wrongClient = await failedConnect({ tls: { ...tls, cert: stranger.cert, key: stranger.key } });
  assert.match(wrongClient.reason ?? '', /^TLS handshake failed: .*\(the server did not accept the client certificate\)$/);
  // the server's certificate names localhost and 127.0.0.1, nothing else
  const otherName = await failedConnect({ tls, server: '127.0.0.2' });
  assert.match(otherName.reason ?? '', /not accepted .*IP: 127\.0\.0\.2 is not in the cert's list/);
});

test('a zookeeper-tls file that is missing or not PEM is refused at once, naming the key and the file', () => {
  const missing = join(dir, 'no-such.pem');
  assert.throws(() => new ZooKeeper({ servers: [{ host, port, chroot: null }], tls: { ...tls, key: missing } }),
    (e: unknown) => e instanceof ZkTlsError && e.message === `zookeeper-tls.key: cannot read ${missing}: ENOENT`);
  const notPem = join(dir, 'not.pem');
  writeFileSync(notPem, 'hello\n');
  assert.throws(() => new ZooKeeper({ servers: [{ host, port, chroot: null }], tls: { ...tls, ca: notPem } }),
    (e: unknown) => e instanceof ZkTlsError && e.message.startsWith(`zookeeper-tls.ca: ${notPem} is not a PEM CA certificate`));
  assert.throws(() => new ZooKeeper({ servers: [{ host, port, chroot: null }], tls: { ...tls, key: strangerPki().key } }),
    (e: unknown) => e instanceof ZkTlsError && /^zookeeper-tls\.cert\/key: .* are not a PEM certificate and its key/.test(e.message));
});

function tlsEnv(): TestEnv & { yaml: string } {
  const env = testEnv();
  const chroot = uniqueChroot();
  // relative paths are read from the config file's directory
  execFileSync('cp', [tls.cert, tls.key, tls.ca, env.dir]);
  const zkYaml = `zookeeper-servers:\n  - host: ${host}\n    port: ${port}\n    chroot: ${chroot}\n`
    + 'zookeeper-tls:\n  cert: client.pem\n  key: client.key\n  ca: ca.pem\n';
  return { ...env, chroot, zkYaml, kazooHosts: `${host}:${port}${chroot}`, yaml: '' };
}

function run(cmd: string, args: string[], cwd?: string): { p: ReturnType<typeof spawn>; out: () => string; exited: Promise<number | null> } {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd, env: { ...process.env, NODEPOOL_LOG_LEVEL: 'warn' } });
  let out = '';
  p.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  p.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  return { p, out: () => out, exited: new Promise((r) => p.on('exit', (code) => r(code))) };
}

test('launcher, Zuul (kazoo) and the nodepool CLI all over TLS: requests fulfilled, nodes listed', async () => {
  const env = tlsEnv();
  const cfg = env.write('nodepool.yaml', fakeConfig(env, { labels: [{ name: 'fake-label', minReady: 1 }] }));
  const launcher = run(process.execPath, ['packages/launcher/bin/nodepool-launcher.js', '-f', '-c', cfg, '-p', `${env.dir}/l.pid`, '--no-webapp']);
  try {
    const t = join(env.dir);
    const zuul = run('/usr/bin/python3', ['test/zuul/zuul_client.py', env.kazooHosts, 'fake-label', '--count', '2', '--timeout', '30',
      '--tls-cert', `${t}/client.pem`, '--tls-key', `${t}/client.key`, '--tls-ca', `${t}/ca.pem`]);
    assert.equal(await zuul.exited, 0, `${zuul.out()}\n--- launcher:\n${launcher.out()}`);
    assert.match(zuul.out(), /"summary": true, "fulfilled": 2, "total": 2/);
    const list = await waitFor('a ready node listed by the CLI over TLS', async () => {
      const cli = run(process.execPath, ['packages/cli/bin/nodepool.js', '-c', cfg, 'list', '--json']);
      if ((await cli.exited) !== 0) throw new Error(cli.out());
      const nodes = JSON.parse(cli.out()) as { label: string[]; state: string }[];
      return nodes.some((n) => n.label.includes('fake-label') && n.state === 'ready') ? nodes : null;
    }, 30_000);
    assert.ok(list.length >= 1);
  } finally {
    launcher.p.kill('SIGINT');
    assert.equal(await launcher.exited, 0, launcher.out());
    env.cleanup();
  }
});

test('the builder over TLS builds and uploads an image; the CLI lists both over TLS', async () => {
  const env = tlsEnv();
  const cfg = env.write('nodepool.yaml', [
    env.zkYaml.trimEnd(), `images-dir: ${env.dir}/images`, `build-log-dir: ${env.dir}/logs`, 'labels: []',
    'diskimages:', '  - name: tls-image', '    elements: [debian-minimal]',
    'providers:', '  - name: fake-provider', '    driver: fake', `    state-file: ${env.dir}/cloud.json`,
    '    diskimages:', '      - name: tls-image', '    pools: []', '',
  ].join('\n'));
  const builder = run(process.execPath, ['packages/builder/bin/nodepool-builder.js', '-f', '--fake', '-c', cfg, '-p', `${env.dir}/b.pid`]);
  try {
    const cli = async (cmd: string) => {
      const c = run(process.execPath, ['packages/cli/bin/nodepool.js', '-c', cfg, cmd, '--json']);
      if ((await c.exited) !== 0) throw new Error(c.out());
      return JSON.parse(c.out()) as { state: string }[];
    };
    await waitFor('a ready upload listed over TLS', async () => (await cli('image-list')).some((u) => u.state === 'ready'), 60_000)
      .catch((e: Error) => { throw new Error(`${e.message}\n--- builder:\n${builder.out()}`); });
    assert.ok((await cli('dib-image-list')).some((b) => b.state === 'ready'));
  } finally {
    builder.p.kill('SIGINT');
    assert.equal(await builder.exited, 0, builder.out());
    env.cleanup();
  }
});

test('the CLI and the launcher refuse a zookeeper-tls file they cannot read, naming key and file', async () => {
  const env = tlsEnv();
  try {
    const cfg = env.write('nodepool.yaml', fakeConfig(env).replace('ca: ca.pem', 'ca: missing-ca.pem'));
    const cli = run(process.execPath, ['packages/cli/bin/nodepool.js', '-c', cfg, 'list']);
    assert.equal(await cli.exited, 1);
    assert.equal(cli.out(), `nodepool: ${cfg}: zookeeper-tls.ca: cannot read ${env.dir}/missing-ca.pem: ENOENT\n`);
    const launcher = run(process.execPath, ['packages/launcher/bin/nodepool-launcher.js', '-f', '-c', cfg, '-p', `${env.dir}/l.pid`, '--no-webapp']);
    assert.equal(await launcher.exited, 1);
    assert.match(launcher.out(), new RegExp(`zookeeper-tls\\.ca: cannot read ${env.dir}/missing-ca\\.pem: ENOENT`));
  } finally {
    env.cleanup();
  }
});
