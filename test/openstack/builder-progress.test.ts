// Glance upload progress in the builder's log: the `nodepool-builder` daemon (--fake DIB) uploads a
// 4 MiB image to the simulator's Glance and logs the upload every 10 %, 0 % to 100 %, before the
// upload is declared ready.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { connectZk, waitFor } from '../helpers/harness.js';
import { builderSetup } from './helpers.js';

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'packages/builder/bin/nodepool-builder.js');
const SIZE = 4 * 1024 * 1024;

interface LogLine { level?: string; name?: string; msg?: string; bytes?: number; total?: number; provider?: string; build?: string }

test('the builder logs Glance upload progress every 10 % (0 % … 100 %)', async () => {
  const { sim, env, config } = await builderSetup();
  const zk = await connectZk(env);
  const child = spawn(process.execPath, [BIN, '-c', config, '-p', join(env.dir, 'builder.pid'), '-f', '--fake', '--upload-workers', '1'], {
    env: {
      ...process.env, OS_CLIENT_CONFIG_FILE: join(env.dir, 'clouds.yaml'), NODEPOOL_STATE_DIR: env.dir,
      NODEPOOL_LOG_LEVEL: 'info', FAKE_DIB_SIZE: String(SIZE),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    // the daemon's own 10 s upload cycle
    const upload = await waitFor('upload ready', () => zk.getMostRecentImageUpload('ubuntu', 'sim', 'ready'), 60_000, 100);
    assert.equal(sim.state.images.get(upload.external_id ?? '')?.size, SIZE);
    child.kill('SIGINT');
    assert.equal(await exited, 0, stderr);

    const lines: LogLine[] = stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
    const base = `ubuntu-${upload.build_id}`;
    const progress = lines.filter((l) => l.msg?.startsWith(`Uploading ${base} to sim: `));
    const pcts = progress.map((l) => Number(/: (\d+)% \(/.exec(l.msg ?? '')?.[1]));
    assert.deepEqual(pcts, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100], stderr);
    for (const [i, l] of progress.entries()) {
      assert.equal(l.level, 'info');
      assert.match(l.name ?? '', /^nodepool\.builder\.UploadWorker/);
      assert.equal(l.provider, 'sim');
      assert.equal(l.build, upload.build_id);
      assert.equal(l.total, SIZE);
      assert.ok((l.bytes ?? -1) >= ((pcts[i] ?? 0) / 100) * SIZE, `line ${i}: bytes sent match its percentage`);
      assert.ok(l.msg?.endsWith(`(${l.bytes} of ${SIZE} bytes)`), l.msg);
    }
    assert.equal(progress.at(-1)?.bytes, SIZE);
    const started = lines.findIndex((l) => l.msg?.startsWith(`Uploading DIB image build ${upload.build_id} from `));
    const ready = lines.findIndex((l) => l.msg === `Image build ${base} in sim is ready`);
    const first = lines.indexOf(progress[0] as LogLine);
    const last = lines.indexOf(progress.at(-1) as LogLine);
    assert.ok(started >= 0 && started < first && last < ready, 'upload started, progress, then ready');
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    await zk.close();
    await sim.stop();
    env.cleanup();
  }
});
