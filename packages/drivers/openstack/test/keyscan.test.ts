// Host-key scans against real SSH servers: the simulator runs an ssh2 server with its own
// ed25519 key on every ACTIVE server's address (a loopback network, so the address is local).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SshError, keyscan, keyType } from '@nodepool-ts/core/ssh';
import { CIRROS, fixture, specFor, startManager } from './helpers.js';

const ROOT = resolve(import.meta.dirname, '../../../..');

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const a = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return a !== null && typeof a === 'object' ? a.port : 0;
}

function providerYaml(sshPort: number, bootTimeout = 5): string {
  return `
    rate: 0.0001
    boot-timeout: ${bootTimeout}
    cloud-images:
      - name: cirros
        image-name: ${CIRROS}
        connection-port: ${sshPort}
      - name: windows
        image-name: ${CIRROS}
        connection-type: winrm
        connection-port: ${sshPort}
    pools:
      - name: main
        networks: [loopback]
        labels:
          - name: small
            cloud-image: cirros
            min-ram: 2048
          - name: keyscan
            cloud-image: windows
            min-ram: 2048
`;
}

const LOOPBACK = { networks: [{ name: 'loopback', cidr: '127.42.0.0/16' }, { name: 'public', cidr: '172.24.4.0/24', external: true }] };

test('hostKeys scans the booted server\'s sshd on the image\'s connection port', async () => {
  const port = await freePort();
  const f = await fixture({ sim: { ...LOOPBACK, sshPort: port }, provider: providerYaml(port) });
  const m = await startManager(f);
  try {
    const c = await m.createServer(specFor(f, 'small', '0000000001'));
    const s = await m.waitForServer(c.id, 5000);
    assert.match(s.interfaceIp ?? '', /^127\.42\./, 'a loopback address counts as public: no floating IP');
    const keys = await m.hostKeys(s);
    assert.deepEqual(keys, [f.sim.state.servers.get(c.id)?.hostKey]);
    assert.match(keys[0] ?? '', /^ssh-ed25519 AAAA/);
    // winrm: only the port is waited for
    const w = await m.createServer(specFor(f, 'keyscan', '0000000002'));
    assert.deepEqual(await m.hostKeys(await m.waitForServer(w.id, 5000)), []);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('sshd down: the scan retries every 2 s and fails after boot-timeout', async () => {
  const port = await freePort();
  const f = await fixture({ sim: { ...LOOPBACK, sshPort: port, faults: { sshDown: true } }, provider: providerYaml(port, 1) });
  const m = await startManager(f);
  try {
    const c = await m.createServer(specFor(f, 'small', '0000000001'));
    const s = await m.waitForServer(c.id, 5000);
    const t0 = Date.now();
    await assert.rejects(m.hostKeys(s), (err: unknown) => {
      assert.ok(err instanceof SshError);
      assert.equal(err.code, 'EKEYSCAN');
      assert.match(err.message, /Timeout connecting to 127\.42\.\d+\.\d+ on port \d+ after 1 s/);
      return true;
    });
    assert.ok(Date.now() - t0 < 3000);
    // sshd comes up while we scan: found on the next attempt
    setTimeout(() => f.sim.setFaults({ sshDown: false }), 300);
    const keys = await keyscan(s.interfaceIp ?? '', port, 5000, undefined, { retryMs: 100 });
    assert.equal(keys.length, 1);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('a port that accepts but speaks no SSH yields no key and times out', async () => {
  const port = await freePort();
  const server: Server = createServer((sock) => {
    sock.on('error', () => undefined);
    sock.resume(); // read what the client sends, or the socket never ends
    sock.end('not ssh\r\n');
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  try {
    await assert.rejects(keyscan('127.0.0.1', port, 800, undefined, { retryMs: 100 }),
      (err: unknown) => err instanceof SshError && err.code === 'EKEYSCAN' && /port is open but no SSH host key/.test(err.message));
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    await assert.rejects(keyscan('127.0.0.1', port, 5000, ac.signal, { retryMs: 50 }),
      (err: unknown) => err instanceof SshError && err.code === 'EABORTED');
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('keyType reads the algorithm out of a key blob', () => {
  const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.alloc(36)]);
  assert.equal(keyType(blob), 'ssh-ed25519');
  assert.equal(keyType(Buffer.alloc(2)), 'unknown');
});

test('a real OpenSSH server: one key per type, matching its host key files', { skip: !existsSync('/usr/sbin/sshd') && 'no sshd' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'np-sshd-'));
  const r = spawnSync('bash', ['scripts/sshd.sh', 'start', dir], { encoding: 'utf8', cwd: ROOT });
  assert.equal(r.status, 0, r.stderr);
  try {
    const [host = '', port = '0'] = r.stdout.trim().split(':');
    const keys = await keyscan(host, Number(port), 10_000);
    const files = readdirSync(dir).filter((n) => /^ssh_host_.*_key\.pub$|host.*\.pub$/.test(n) && !n.startsWith('client'));
    const expected = files.map((n) => readFileSync(join(dir, n), 'utf8').trim().split(/\s+/).slice(0, 2).join(' '));
    assert.deepEqual([...keys].sort(), [...expected].sort());
    assert.deepEqual(keys.map((k) => k.split(' ')[0]), ['ssh-rsa', 'ecdsa-sha2-nistp256', 'ssh-ed25519']);
  } finally {
    spawnSync('bash', ['scripts/sshd.sh', 'stop', dir], { cwd: ROOT });
    rmSync(dir, { recursive: true, force: true });
  }
});
