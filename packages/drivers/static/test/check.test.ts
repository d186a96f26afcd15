// Alive checks against real OpenSSH servers: TCP + verified host keys through ssh2.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fingerprint, keyscan, normalizeHostKey, scanHostKey } from '@nodepool-ts/core/ssh';
import { checkHost } from '../src/index.js';
import { freePort, makeClientKey, startSshd, type ClientKey, type Sshd } from './sshd.js';

let key: ClientKey;
let a: Sshd;
let b: Sshd;

before(async () => {
  key = await makeClientKey();
  [a, b] = await Promise.all([startSshd('127.0.0.21', key), startSshd('127.0.0.22', key)]);
});

after(async () => {
  await Promise.all([a?.destroy(), b?.destroy()]);
  key?.cleanup();
});

describe('checkHost', () => {
  it('accepts a live host whose configured keys (any types) are all offered', async () => {
    const r = await checkHost({
      name: a.address, port: a.port, timeoutMs: 5000, connectionType: 'ssh',
      hostKeys: [a.hostKey('ed25519'), `${a.hostKey('rsa')} root@somewhere`, a.hostKey('ecdsa')],
    });
    assert.equal(r.ok, true);
    if (!r.ok) return;
    assert.deepEqual(r.address, { address: a.address, family: 4, publicIpv4: a.address, publicIpv6: null });
    assert.deepEqual([...r.keys].sort(), [...a.hostKeys].sort());
  });

  it('without host-key, collects the default key types (like ssh-keyscan)', async () => {
    const r = await checkHost({ name: a.address, port: a.port, timeoutMs: 5000, connectionType: 'ssh', hostKeys: [] });
    assert.equal(r.ok, true);
    if (r.ok) assert.deepEqual([...r.keys].sort(), [...a.hostKeys].sort());
  });

  it('refuses a host presenting another host key, naming both fingerprints', async () => {
    const r = await checkHost({ name: a.address, port: a.port, timeoutMs: 5000, connectionType: 'ssh', hostKeys: [b.hostKey('ed25519')] });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.code, 'EHOSTKEY');
    assert.match(r.reason, /host key mismatch/);
    assert.ok(r.reason.includes(fingerprint(b.hostKey('ed25519'))), r.reason);
    assert.ok(r.reason.includes(fingerprint(a.hostKey('ed25519'))), r.reason);
  });

  it('refuses when one of several configured keys is wrong', async () => {
    const r = await checkHost({
      name: a.address, port: a.port, timeoutMs: 5000, connectionType: 'ssh',
      hostKeys: [a.hostKey('ed25519'), b.hostKey('rsa')],
    });
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.code, 'EHOSTKEY');
  });

  it('quick (hand-out) checks use one connection and still compare the first configured key', async () => {
    let r = await checkHost({ name: a.address, port: a.port, timeoutMs: 5000, connectionType: 'ssh', quick: true,
      hostKeys: [a.hostKey('rsa'), a.hostKey('ed25519')] });
    assert.equal(r.ok, true);
    if (r.ok) assert.deepEqual(r.keys, [a.hostKey('rsa')]);
    r = await checkHost({ name: a.address, port: a.port, timeoutMs: 5000, connectionType: 'ssh', quick: true, hostKeys: [] });
    assert.equal(r.ok, true);
    if (r.ok) assert.equal(r.keys.length, 1);
    r = await checkHost({ name: a.address, port: a.port, timeoutMs: 5000, connectionType: 'ssh', quick: true, hostKeys: [b.hostKey('ecdsa')] });
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.code, 'EHOSTKEY');
  });

  it('reports a closed port fast, and a stopped server until it is back', async () => {
    const port = await freePort('127.0.0.23');
    let r = await checkHost({ name: '127.0.0.23', port, timeoutMs: 5000, connectionType: 'ssh', hostKeys: [] });
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.code, 'ECONNECT');
      assert.match(r.reason, /ECONNREFUSED/);
      assert.ok(r.ms < 2000);
    }
    await b.stop();
    r = await checkHost({ name: b.address, port: b.port, timeoutMs: 5000, connectionType: 'ssh', hostKeys: [b.hostKey('ecdsa')] });
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.code, 'ECONNECT');
    await b.start();
    r = await checkHost({ name: b.address, port: b.port, timeoutMs: 5000, connectionType: 'ssh', hostKeys: [b.hostKey('ecdsa')] });
    assert.equal(r.ok, true);
  });

  it('bounds the wait on a port that accepts but never speaks SSH', async () => {
    const net = await import('node:net');
    const silent = net.createServer((sock) => sock.resume());
    await new Promise<void>((r) => silent.listen(0, '127.0.0.24', () => r()));
    const addr = silent.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    try {
      const t0 = Date.now();
      const r = await checkHost({ name: '127.0.0.24', port, timeoutMs: 800, connectionType: 'ssh', hostKeys: [] });
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.code, 'EKEYSCAN');
      assert.ok(Date.now() - t0 < 2500, `took ${Date.now() - t0} ms`);
    } finally {
      silent.close();
    }
  });

  it('reports an unresolvable name as EDNS', async () => {
    const r = await checkHost({ name: 'no-such-host.invalid', port: 22, timeoutMs: 3000, connectionType: 'ssh', hostKeys: [] });
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.code, 'EDNS');
      assert.match(r.reason, /no-such-host\.invalid/);
    }
  });

  it('checks only TCP for winrm hosts (no keys)', async () => {
    const r = await checkHost({ name: a.address, port: a.port, timeoutMs: 3000, connectionType: 'winrm', hostKeys: [] });
    assert.equal(r.ok, true);
    if (r.ok) assert.deepEqual(r.keys, []);
  });

  it('says so when a configured key type cannot be checked', async () => {
    const r = await checkHost({ name: a.address, port: a.port, timeoutMs: 3000, connectionType: 'ssh', hostKeys: ['ssh-foo AAAAB3Nz'] });
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.reason, /ssh-foo/);
  });
});

describe('key scanning', () => {
  it('scanHostKey returns the key of the requested type, verified', async () => {
    const k = await scanHostKey(a.address, a.port, 'ssh-rsa', Date.now() + 5000);
    assert.equal(k, a.hostKey('rsa'));
  });

  it('keyscan (cloud nodes) gathers every default type', async () => {
    const keys = await keyscan(a.address, a.port, 5000);
    assert.deepEqual([...keys].sort(), [...a.hostKeys].sort());
  });

  it('normalizeHostKey accepts ssh-keyscan and authorized_keys style lines', () => {
    const k = a.hostKey('ed25519');
    assert.equal(normalizeHostKey(`[127.0.0.1]:2222 ${k}`), k);
    assert.equal(normalizeHostKey(`  ${k}   comment here `), k);
  });
});
