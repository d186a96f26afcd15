// The real executable, spawned as an operator would run it: exit codes, output, and that the
// process ends promptly once the command is done (no ZooKeeper socket or timer left behind).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { newNode } from '@nodepool-ts/core/model';
import { makeFixture } from './helpers.js';
import type { Fixture } from './helpers.js';

const BIN = fileURLToPath(new URL('../bin/nodepool.js', import.meta.url));
const BUILT = existsSync(fileURLToPath(new URL('../dist/main.js', import.meta.url)));

function run(args: string[], stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
    child.stdin.end(stdin);
  });
}

describe('bin/nodepool.js', { skip: BUILT ? false : 'packages/cli/dist not built (npx tsc -b)' }, () => {
  let fx: Fixture;
  before(async () => {
    fx = await makeFixture();
    await fx.zk.storeNode(newNode({
      state: 'ready', state_time: Date.now() / 1000, provider: 'fake-provider', pool: 'main', type: ['fake-label'],
      external_id: 'srv-0', public_ipv4: '203.0.113.9', public_ipv6: '',
    }));
  });
  after(async () => { await fx.cleanup(); });

  test('--version and no command', async () => {
    const v = await run(['--version']);
    assert.equal(v.code, 0);
    assert.equal(v.stdout, '0.1.0\n');
    const none = await run([]);
    assert.equal(none.code, 1);
    assert.match(none.stdout, /^usage: nodepool /);
  });

  test('list against ZooKeeper, then a prompt exit', async () => {
    const r = await run(['-c', fx.configFile, 'list']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const lines = r.stdout.split('\n');
    assert.equal(lines[1], '| ID         | Provider      | Label      | Server ID | Public IPv4 | IPv6 | State | Age         | Locked   |');
    assert.match(lines[3] ?? '', /^\| 0000000000 \| fake-provider \| fake-label \| srv-0     \| 203\.0\.113\.9 \|      \| ready \| 00:00:00:0\d \| unlocked \|$/);
    assert.ok(r.ms < 8000, `took ${r.ms} ms`);
  });

  test('a reader that stops early (`nodepool list | head -1`) ends the listing quietly', async () => {
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, '-c', fx.configFile, 'list', '--detail'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      // the read end closed before the table is written: the write fails with EPIPE
      child.stdout.destroy();
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stderr }));
    });
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
  });

  test('erase reads its answer from stdin', async () => {
    const r = await run(['-c', fx.configFile, 'erase', 'other-provider'], 'n\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '\nWARNING! This action is not reversible!\nErase ZooKeeper data for provider other-provider? [N/y] Aborting. No data erased.\n');
  });

  test('not-found message, exit status 0 like Nodepool', async () => {
    const r = await run(['-c', fx.configFile, 'delete', '0000000042']);
    assert.deepEqual([r.code, r.stdout], [0, 'Node id 0000000042 not found\n']);
  });
});
