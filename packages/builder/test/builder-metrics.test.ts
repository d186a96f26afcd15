// The builder's statsd metrics with Nodepool's keys, received on a real UDP socket: build and
// upload results, and the builder stats (workers, current builds/uploads, image states, requests).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { StatsdBuilderMetrics } from '../src/index.js';
import { TestEnv, waitFor } from './helpers.js';

let sock: Socket;
let port = 0;
let lines: string[] = [];

before(async () => {
  sock = createSocket('udp4');
  sock.on('message', (msg) => { lines.push(...msg.toString('utf8').split('\n').filter((l) => l !== '')); });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  port = sock.address().port;
});

after(() => sock.close());

/** Every value sent for `key` with statsd type `type`, oldest first. */
function values(key: string, type: 'g' | 'c' | 'ms'): number[] {
  const out: number[] = [];
  for (const l of lines) {
    const m = /^(.+):([^:|]+)\|(g|c|ms)$/.exec(l);
    if (m?.[1] === key && m[3] === type) out.push(Number(m[2]));
  }
  return out;
}

test('statsd: DIB results, uploads and the builder stats reach the socket with Nodepool\'s keys', async () => {
  const env = new TestEnv();
  try {
    env.writeConfig({
      diskimages: [{ name: 'fake-image', envVars: { FAKE_DIB_SLEEP: '1' } }, { name: 'held', pause: true }],
      providers: [{ name: 'fake-provider', diskimages: [{ name: 'fake-image' }] }],
    });
    const metrics = StatsdBuilderMetrics.fromEnv({ STATSD_HOST: '127.0.0.1', STATSD_PORT: String(port) });
    const b = await env.builder({ metrics, statusIntervalMs: 100, uploadWorkers: 2 });
    const host = `nodepool.builder.${b.hostname.replace(/[.:]/g, '_')}`;
    await waitFor('the image seen building', () => values(`${host}.image.fake-image.build.state`, 'g').includes(1), 20_000);
    assert.ok(values(`${host}.current_builds`, 'g').includes(1));
    await waitFor('upload counted', () => values('nodepool.image_update.fake-image.fake-provider', 'c').length > 0, 20_000);
    assert.equal(values('nodepool.dib_image_build.fake-image.status.rc', 'g').at(-1), 0);
    assert.ok((values('nodepool.dib_image_build.fake-image.status.duration', 'ms').at(-1) ?? 0) >= 1000, 'DIB ran for the 1 s sleep');
    assert.ok((values('nodepool.dib_image_build.fake-image.qcow2.size', 'g').at(-1) ?? 0) > 0);
    assert.ok(Math.abs((values('nodepool.dib_image_build.fake-image.status.last_build', 'g').at(-1) ?? 0) - Date.now() / 1000) < 60);
    assert.equal(values('nodepool.image_update.fake-image.fake-provider', 'ms').length, 1);
    // (one report may already count no upload while the worker's per-image state still says uploading)
    await waitFor('idle again', () => values(`${host}.image.fake-image.build.state`, 'g').at(-1) === 0
      && values(`${host}.current_builds`, 'g').at(-1) === 0 && values(`${host}.current_uploads`, 'g').at(-1) === 0
      && values(`${host}.image.fake-image.provider.fake-provider.upload.state`, 'g').at(-1) === 0, 10_000);
    assert.equal(values(`${host}.build_workers`, 'g').at(-1), 1);
    assert.equal(values(`${host}.upload_workers`, 'g').at(-1), 2);
    assert.equal(values(`${host}.image.fake-image.provider.fake-provider.upload.state`, 'g').at(-1), 0);
    assert.equal(values('nodepool.image_build_requests', 'g').at(-1), 0);
    await waitFor('the paused image reported paused', () => values(`${host}.image.held.build.state`, 'g').at(-1) === 3, 10_000);
    // a build requested of the paused image waits: a pending request
    await (await env.zk()).submitBuildRequest('held');
    await waitFor('pending request counted', () => values('nodepool.image.held.image_build_requests', 'g').at(-1) === 1
      && values('nodepool.image_build_requests', 'g').at(-1) === 1, 10_000);
  } finally {
    await env.cleanup();
  }
});
