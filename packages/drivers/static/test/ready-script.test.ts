// The ready-script runner against a real sshd: success, failure with output, a hanging script
// (bounded, killed on the node with its children), megabytes of output (capped), wrong host key,
// and the config glue (script-dir, private-key, labels without a script).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config, Label } from '@nodepool-ts/core/config';
import { newNode } from '@nodepool-ts/core/model';
import { runReadyScript, runScriptOverSsh, resolveScriptPath, describeScriptResult } from '../src/index.js';
import { currentUser, makeClientKey, startSshd, type ClientKey, type Sshd } from './sshd.js';

let key: ClientKey;
let s: Sshd;
let other: Sshd;
let dir: string;

function script(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, body);
  chmodSync(p, 0o755);
  return p;
}

function target(hostKeys: string[] = []) {
  return { host: s.address, port: s.port, username: currentUser(), hostKeys };
}

before(async () => {
  key = await makeClientKey();
  dir = mkdtempSync(join(tmpdir(), 'np-rs-'));
  [s, other] = await Promise.all([startSshd('127.0.0.31', key), startSshd('127.0.0.32', key)]);
});

after(async () => {
  await Promise.all([s?.destroy(), other?.destroy()]);
  key?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('runScriptOverSsh', () => {
  it('runs the script as the user with args and env; exit 0 is ok; the temp copy is removed', async () => {
    const marker = join(dir, 'ran-in');
    const p = script('ok.sh', `#!/bin/sh\necho "args=$1 label=$NODEPOOL_LABEL user=$(id -un)"\necho "$0" > ${marker}\necho warn >&2\n`);
    const r = await runScriptOverSsh(target(s.hostKeys), {
      script: p, privateKey: readFileSync(key.privateKey), args: ['host-1'], env: { NODEPOOL_LABEL: 'small' },
    });
    assert.equal(r.ok, true, r.error ?? r.output);
    assert.equal(r.exitCode, 0);
    assert.match(r.output, new RegExp(`args=host-1 label=small user=${currentUser()}`));
    assert.match(r.output, /warn/);
    const remoteCopy = readFileSync(marker, 'utf8').trim();
    assert.match(remoteCopy, /nodepool-ready\.[A-Za-z0-9]+\/script$/);
    assert.equal(existsSync(remoteCopy), false, 'temp copy removed');
  });

  it('a non-zero exit is a failure carrying the output', async () => {
    const p = script('fail.sh', '#!/bin/sh\necho "packstack: cannot reach keystone"\nexit 7\n');
    const r = await runScriptOverSsh(target(), { script: p, privateKey: readFileSync(key.privateKey) });
    assert.equal(r.ok, false);
    assert.equal(r.exitCode, 7);
    assert.equal(r.error, null);
    assert.match(r.output, /cannot reach keystone/);
    assert.match(describeScriptResult(r), /^exit 7 after/);
  });

  it('a hanging script times out within its bound and is killed on the node with its children', async () => {
    const tag = `np-hang-${process.pid}-${Date.now()}`;
    const p = script('hang.sh', `#!/bin/sh\necho started\nsleep 300 &\nexec -a ${tag} sleep 300\n`);
    const t0 = Date.now();
    const r = await runScriptOverSsh(target(), { script: p, privateKey: readFileSync(key.privateKey), timeoutMs: 1500 });
    const took = Date.now() - t0;
    assert.equal(r.ok, false);
    assert.equal(r.timedOut, true);
    assert.match(r.error ?? '', /timed out after 1500 ms/);
    assert.match(r.output, /started/);
    assert.ok(took < 6000, `took ${took} ms`);
    // no `sleep 300` of that script survives
    await new Promise((res) => setTimeout(res, 300));
    const ps = execFileSync('ps', ['-eo', 'args']).toString();
    assert.equal(ps.includes(tag), false, 'script process killed');
  });

  it('megabytes of output are drained and capped (head and tail kept)', async () => {
    const p = script('loud.sh', '#!/bin/sh\necho FIRST-LINE\nhead -c 8000000 /dev/zero | tr "\\0" "x"\necho\necho LAST-LINE\nexit 1\n');
    const r = await runScriptOverSsh(target(), { script: p, privateKey: readFileSync(key.privateKey), outputLimit: 16 * 1024 });
    assert.equal(r.ok, false);
    assert.equal(r.exitCode, 1);
    assert.equal(r.truncated, true);
    assert.ok(r.outputBytes > 8_000_000);
    assert.ok(r.output.length < 17 * 1024, `kept ${r.output.length}`);
    assert.match(r.output, /^FIRST-LINE/);
    assert.match(r.output, /LAST-LINE\n$/);
    assert.match(r.output, /bytes of output omitted/);
  });

  it('refuses a node whose host key is not the known one', async () => {
    const p = script('never.sh', '#!/bin/sh\nexit 0\n');
    const r = await runScriptOverSsh(target(other.hostKeys), { script: p, privateKey: readFileSync(key.privateKey) });
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /host key/);
  });

  it('a dead node fails fast with the connect error', async () => {
    const p = script('never2.sh', '#!/bin/sh\nexit 0\n');
    const r = await runScriptOverSsh({ host: '127.0.0.33', port: 1, username: 'root', hostKeys: [] },
      { script: p, privateKey: readFileSync(key.privateKey), timeoutMs: 5000 });
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /ECONNREFUSED/);
  });

  it('a missing script or a wrong key is a clear failure', async () => {
    let r = await runScriptOverSsh(target(), { script: join(dir, 'absent.sh'), privateKey: readFileSync(key.privateKey) });
    assert.match(r.error ?? '', /cannot read ready-script .*absent\.sh: ENOENT/);
    const other = await makeClientKey();
    try {
      r = await runScriptOverSsh(target(), { script: script('x.sh', '#!/bin/sh\n'), privateKey: readFileSync(other.privateKey) });
      assert.equal(r.ok, false);
      assert.match(r.error ?? '', /SSH login failed/);
    } finally {
      other.cleanup();
    }
  });
});

describe('runReadyScript (config glue)', () => {
  function config(labels: Record<string, string | null>, privateKey: string | null): Config {
    const m = new Map<string, Label>();
    for (const [name, rs] of Object.entries(labels)) m.set(name, { name, minReady: 0, maxReadyAge: 0, readyScript: rs });
    return { labels: m, privateKey, scriptDir: dir, file: join(dir, 'nodepool.yaml') } as unknown as Config;
  }
  const node = () => newNode({
    id: '0000000001', state: 'testing', hostname: s.address, interface_ip: s.address, connection_port: s.port,
    connection_type: 'ssh', username: currentUser(), host_keys: s.hostKeys, provider: 'p', pool: 'main',
  });

  it('resolves relative names in script-dir and passes node facts', async () => {
    script('facts.sh', '#!/bin/sh\necho "$1 $NODEPOOL_NODE_ID $NODEPOOL_LABEL $NODEPOOL_PROVIDER $NODEPOOL_POOL"\n');
    const r = await runReadyScript(node(), 'lab', config({ lab: 'facts.sh' }, key.privateKey));
    assert.equal(r.ok, true, r.error ?? '');
    assert.equal(r.script, join(dir, 'facts.sh'));
    assert.equal(r.output.trim(), `${s.address} 0000000001 lab p main`);
  });

  it('a label without a ready-script is ok without connecting', async () => {
    const r = await runReadyScript(newNode({ connection_port: 1 }), 'plain', config({ plain: null }, null));
    assert.equal(r.ok, true);
    assert.equal(r.script, null);
  });

  it('a ready-script without private-key fails naming the config file', async () => {
    const r = await runReadyScript(node(), 'lab', config({ lab: 'facts.sh' }, null));
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /needs `private-key` in .*nodepool\.yaml/);
  });

  it('a winrm node cannot run a ready-script', async () => {
    const n = node();
    n.connection_type = 'winrm';
    const r = await runReadyScript(n, 'lab', config({ lab: 'facts.sh' }, key.privateKey));
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /needs an ssh connection/);
  });

  it('absolute script paths are used as they are', () => {
    assert.equal(resolveScriptPath({ scriptDir: '/x', file: '/etc/nodepool/nodepool.yaml' }, '/opt/s.sh'), '/opt/s.sh');
    assert.equal(resolveScriptPath({ scriptDir: null, file: '/etc/nodepool/nodepool.yaml' }, 's.sh'), '/etc/nodepool/s.sh');
  });
});
