// Scenario 5: the builder killed with -9, once mid-build and once mid-upload, while a launcher
// boots nodes from its images under load. Real processes: `nodepool-builder -f --fake` (the
// stand-in disk-image-create) and `nodepool-launcher`, both against the OpenStack simulator
// (scripts/openstack-sim.sh), whose Glance is told to take its time over image data so an upload
// can be caught half-way. Requirements: no half-written image is ever used (no upload of the
// killed build, no node booted from the half-uploaded image), the locks come free with the dead
// session, the build and the upload are retried and succeed, and the debris (the killed build's
// record and files, the stale `uploading` record, the half-written Glance image) is cleaned up.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ImageBuild, ImageUpload } from '@nodepool-ts/core/model';
import { ZuulLoad, summarize, zkRetry } from '../../../bench/zuul-client.js';
import { Auditor } from '../lib/audit.js';
import { newResult, type ScenarioResult } from '../lib/result.js';
import { BuilderProcess, REPO } from '../lib/procs.js';
import { World, sleep, waitUntil, type ServerView } from '../lib/world.js';

export interface BuilderKillOptions {
  concurrency: number;
  /** seconds the fake disk-image-create spends in install.d (the window to kill it in) */
  buildSeconds: number;
  /** how long Glance holds an image upload (ms): the window to kill the uploader in */
  uploadDelayMs: number;
  holdMs: number;
}

export const CI_BUILDER_KILL: BuilderKillOptions = { concurrency: 3, buildSeconds: 4, uploadDelayMs: 8_000, holdMs: 200 };

const IMAGE = 'img';
const PROVIDER = 'sim';

interface SimImageView { id: string; status: string; props: Record<string, string> }

export async function runBuilderKill(o: BuilderKillOptions): Promise<ScenarioResult[]> {
  const t0 = Date.now();
  const build = newResult('builder kill -9 mid-build');
  const upload = newResult('builder kill -9 mid-upload');
  const simDir = mkdtempSync(join(tmpdir(), 'np-rel-bsim-'));
  const world = await new World({ prefix: 'np-rel-builder' }).start();
  const auditor = await new Auditor(await world.connect()).start();
  const builders: BuilderProcess[] = [];
  let n = 0;
  const startBuilder = (): BuilderProcess => {
    const b = new BuilderProcess(`builder-${++n}`, { dir: world.dir, config: world.configFile, flags: ['--fake'], env: { OS_CLIENT_CONFIG_FILE: join(simDir, 'clouds.yaml') } });
    builders.push(b);
    return b;
  };
  try {
    // ---- the cloud, the config, the daemons ----
    const simCfg = join(simDir, 'sim.json');
    writeFileSync(simCfg, JSON.stringify({ limits: { instances: 500, cores: 2000, ram: 50_000_000 }, faults: { bootDelayMs: 200, deleteDelayMs: 50 } }));
    const sim = spawnSync('bash', [join(REPO, 'scripts/openstack-sim.sh'), 'start', simDir, '0', simCfg], { encoding: 'utf8', timeout: 60_000 });
    if (sim.status !== 0) throw new Error(`openstack-sim.sh: ${sim.stderr}`);
    const base = sim.stdout.trim().replace(/\/identity\/v3$/, '');
    const simState = async (): Promise<{ servers: { id: string; metadata: Record<string, string>; deletingSince: string | null; createdAt: string }[]; images: SimImageView[] }> =>
      (await fetch(`${base}/_sim/state`)).json() as never;
    const simFaults = async (body: unknown): Promise<void> => {
      const r = await fetch(`${base}/_sim/faults`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      if (!r.ok) throw new Error(`POST /_sim/faults: ${r.status}`);
    };
    world.serverSource = async () => (await simState()).servers.map((x): ServerView => ({
      id: x.id, nodeId: x.metadata.nodepool_node_id ?? null, deleting: x.deletingSince !== null, createdAt: Date.parse(x.createdAt),
    }));
    const imagesDir = join(world.dir, 'images');
    mkdirSync(imagesDir, { recursive: true });
    world.writeConfig(`${world.zkYaml()}
images-dir: ${imagesDir}
build-log-dir: ${join(world.dir, 'build-logs')}
labels:
  - name: built
    min-ready: 0
diskimages:
  - name: ${IMAGE}
    formats: [qcow2]
    elements: [fedora, vm]
    env-vars:
      FAKE_DIB_SLEEP: '${o.buildSeconds}'
      FAKE_DIB_SIZE: '65536'
providers:
  - name: ${PROVIDER}
    cloud: sim
    rate: 0.0001
    boot-timeout: 5
    launch-timeout: 10
    diskimages:
      - name: ${IMAGE}
    pools:
      - name: main
        max-servers: 50
        networks: [private]
        host-key-checking: false
        labels:
          - name: built
            diskimage: ${IMAGE}
            min-ram: 2048
`);
    const launcher = world.startLauncher({ env: { OS_CLIENT_CONFIG_FILE: join(simDir, 'clouds.yaml') } });
    await world.waitRegistered([launcher]);
    let builder = startBuilder();

    const zk = world.zk;
    const builds = (): Promise<ImageBuild[]> => zkRetry(zk, () => zk.getBuilds(IMAGE));
    const uploads = async (buildId: string): Promise<ImageUpload[]> => zkRetry(zk, () => zk.getImageUploads(IMAGE, buildId, PROVIDER));
    const readyUpload = async (buildId: string): Promise<ImageUpload | null> => (await uploads(buildId)).find((u) => u.state === 'ready') ?? null;
    const lockFree = async (lock: import('@nodepool-ts/core/zk').Lock): Promise<boolean> => {
      if (!(await lock.acquire({ blocking: false }))) return false;
      await lock.release();
      return true;
    };
    const first = await waitUntil('the first build uploaded', async () => {
      for (const b of await builds()) if (b.state === 'ready' && b.id && await readyUpload(b.id)) return b.id;
      return null;
    }, 90_000, 200).catch((err: Error) => { throw new Error(`${err.message}\n${builder.tail()}`); });

    const load = new ZuulLoad(zk, { labels: ['built'], concurrency: o.concurrency, holdMs: o.holdMs, timeoutMs: 180_000 });
    load.start();
    await sleep(2000);

    // ---- kill -9 mid-build ----
    await zkRetry(zk, () => zk.submitBuildRequest(IMAGE));
    const killed = await waitUntil('a new build running', async () =>
      (await builds()).find((b) => b.state === 'building' && b.id !== null && b.id > first)?.id ?? null, 60_000, 100);
    await sleep(Math.min(1500, o.buildSeconds * 300));
    await builder.kill9();
    const tKill = Date.now();
    let tLockFree: number | null = null;
    try {
      await waitUntil('the image build lock free', () => lockFree(zk.imageBuildLock(IMAGE)), 60_000, 100);
      tLockFree = Date.now();
    } catch {
      build.problems.push('the image build lock was not released after the builder died');
    }
    // the next kill needs a slow upload: Glance holds image data
    await simFaults({ rules: [{ service: 'image', method: 'PUT', path: '/file$', delayMs: o.uploadDelayMs }] });
    builder = startBuilder();
    // the build is retried (the request still stands) and becomes ready
    let retried: string | null = null;
    try {
      retried = await waitUntil('the build retried and ready', async () =>
        (await builds()).find((b) => b.state === 'ready' && b.id !== null && b.id > killed)?.id ?? null, 120_000, 100);
    } catch {
      build.problems.push(`the build was not retried after the kill\n${builder.tail()}`);
    }
    const tRetried = Date.now();

    // ---- kill -9 mid-upload (of the retried build) ----
    let stale: ImageUpload | null = null;
    let tKill2 = Date.now();
    let tUploadLockFree: number | null = null;
    let tUploaded: number | null = null;
    let halfAtKill: string[] = [];
    if (retried !== null) {
      const rb = retried;
      stale = await waitUntil('an upload under way', async () => (await uploads(rb)).find((u) => u.state === 'uploading') ?? null, 60_000, 50);
      await sleep(1000);
      await builder.kill9();
      tKill2 = Date.now();
      const sid = stale.id;
      halfAtKill = (await simState()).images.filter((i) => i.props.nodepool_upload_id === sid && i.props.nodepool_build_id === rb)
        .map((i) => `${i.id} (${i.status})`);
      await simFaults({ rules: [] });
      try {
        await waitUntil('the upload lock free', () => lockFree(zk.uploadLock(IMAGE, rb, PROVIDER)), 60_000, 100);
        tUploadLockFree = Date.now();
      } catch {
        upload.problems.push('the upload lock was not released after the builder died');
      }
      builder = startBuilder();
      try {
        await waitUntil('the upload retried and ready', async () => (await readyUpload(rb)) !== null, 120_000, 100);
        tUploaded = Date.now();
      } catch {
        upload.problems.push(`the upload was not retried after the kill\n${builder.tail()}`);
      }
    }
    // nodes keep booting from the new upload
    await sleep(3000);
    const outcomes = await load.stop();

    // ---- debris: killed build, stale upload record, half-written Glance image ----
    const staleId = stale?.id ?? null;
    const halfImages = async (): Promise<SimImageView[]> => (await simState()).images.filter((i) => staleId !== null && i.props.nodepool_upload_id === staleId && i.props.nodepool_build_id === retried);
    let tDebrisGone: number | null = null;
    const debris = async (): Promise<string[]> => {
      const left: string[] = [];
      if ((await builds()).some((b) => b.id === killed)) left.push(`build ${killed} record`);
      const files = existsSync(imagesDir) ? readdirSync(imagesDir).filter((f) => f.startsWith(`${IMAGE}-${killed}`)) : [];
      if (files.length > 0) left.push(`files ${files.join(', ')}`);
      if (retried !== null && staleId !== null && (await uploads(retried)).some((u) => u.id === staleId)) left.push(`upload record ${staleId}`);
      const half = await halfImages();
      if (half.length > 0) left.push(`half-written Glance image ${half.map((i) => `${i.id} (${i.status})`).join(', ')}`);
      return left;
    };
    try {
      // the builder's cleanup runs at start and every 60 s
      await waitUntil('the debris of both kills cleaned up', async () => (await debris()).length === 0, 150_000, 500);
      tDebrisGone = Date.now();
    } catch {
      const left = await debris();
      (left.some((x) => x.includes('Glance') || x.includes('upload')) ? upload : build).problems.push(`left behind: ${left.join('; ')}`);
    }

    // ---- nothing half-written used ----
    if ((await uploads(killed)).length > 0) build.problems.push(`the killed build ${killed} got an upload`);
    const used = [...auditor.imageIds];
    const fromKilled = used.filter((id) => id.includes(`/builds/${killed}/`));
    const fromStale = used.filter((id) => staleId !== null && retried !== null && id.endsWith(`/builds/${retried}/providers/${PROVIDER}/images/${staleId}`));
    if (fromKilled.length > 0) build.problems.push(`nodes booted from the killed build: ${fromKilled.join(', ')}`);
    if (fromStale.length > 0) upload.problems.push(`nodes booted from the half-written upload: ${fromStale.join(', ')}`);

    await world.removeStrayRequests();
    const settled = await world.settle(60_000);
    const s = summarize(outcomes);
    const violations = auditor.violations.map((v) => `illegal transition: ${v}`);
    for (const r of [build, upload]) {
      r.load = `1 builder (--fake DIB, ${o.buildSeconds} s builds) and 1 launcher process on the OpenStack simulator, ${o.concurrency} Zuul jobs at once booting from its images, ${s.total} requests`;
      r.requestsTotal = s.total;
      r.requestsLost = s.lost + s.errors;
      r.requestsFailed = s.failed;
      r.doubleAllocated = s.doubleAllocated.length + s.misallocated.length;
      r.leaked = { servers: settled.leaks.servers.length, nodes: settled.leaks.nodes.length, requests: settled.leaks.requests.length, other: 0 };
      r.problems.push(...violations);
    }
    build.faults = `builder kill -9 during build ${killed} (disk-image-create running)`;
    build.recoveryMs = retried === null ? null : tRetried - tKill;
    build.recoveryWhat = 'kill to the retried build ready';
    build.details = {
      killedBuild: killed, retriedBuild: retried, lockFreeAfterMs: tLockFree === null ? null : tLockFree - tKill,
      debrisGoneAfterKillMs: tDebrisGone === null ? null : tDebrisGone - tKill, imagesBootedFrom: used.length,
      latency_ms: s.latency_ms, leaks: settled.leaks,
    };
    upload.faults = `builder kill -9 during the upload of build ${retried ?? '?'} (Glance holding the data ${o.uploadDelayMs / 1000} s)`;
    upload.recoveryMs = tUploaded === null ? null : tUploaded - tKill2;
    upload.recoveryWhat = 'kill to the retried upload ready';
    upload.details = {
      staleUpload: staleId, halfWrittenImagesAtKill: halfAtKill, uploadLockFreeAfterMs: tUploadLockFree === null ? null : tUploadLockFree - tKill2,
      debrisGoneAfterKillMs: tDebrisGone === null ? null : tDebrisGone - tKill2,
    };
    return [build, upload];
  } finally {
    const secs = Math.round((Date.now() - t0) / 100) / 10;
    build.seconds = secs;
    upload.seconds = secs;
    for (const b of builders) await b.stop();
    auditor.stop();
    await world.close();
    spawnSync('bash', [join(REPO, 'scripts/openstack-sim.sh'), 'stop', simDir], { timeout: 30_000 });
    if (!process.env.NODEPOOL_KEEP_RELIABILITY) rmSync(simDir, { recursive: true, force: true });
  }
}
