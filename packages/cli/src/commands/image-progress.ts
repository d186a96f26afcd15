// `image-build --wait` and `image-upload` (owned by the builder side; dispatched from images.ts /
// main.ts). Progress comes from ZooKeeper, so it works from any host: the builder running the
// build keeps `.../builds/<id>/progress` (phase, hook script, element, failure reason, log path)
// up to date, and the ImageUpload records tell how the uploads go. The waiter follows them with
// watches (a slow fallback poll covers a missed event) and prints one line per step:
//   [00:01:07] install.d/01-package-installs (package-installs)
import { isCloudProvider, type Config, type Provider } from '@nodepool-ts/core/config';
import type { ImageBuild, ImageUpload } from '@nodepool-ts/core/model';
import { paths, type ZooKeeper } from '@nodepool-ts/core/zk';
import { CliError } from '../errors.js';
import type { CommandContext } from '../runtime.js';
import { bool, printJson, str, type Command } from './common.js';
import type { ImageBuildWaitRequest, ImageBuildWaiter } from './images.js';

/** Fallback poll when no watch fired (ms). */
const POLL_MS = 2_000;
/** With nothing new for this long, say what is still running. */
const HEARTBEAT_S = 30;
/** Say once in a while that no builder has picked the request up. */
const NO_BUILDER_HINT_S = 30;

type Printer = (line: string) => void;

function clock(seconds: number): string {
  const s = Math.max(0, Math.trunc(seconds));
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(Math.trunc(s / 3600))}:${p(Math.trunc(s / 60) % 60)}:${p(s % 60)}`;
}

function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.trunc(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.trunc(s / 3600)}h${String(Math.trunc(s / 60) % 60).padStart(2, '0')}m`;
}

/** Resolve on the first change of any watched znode (data, existence or children), or after ms. */
async function changeOrTimeout(zk: ZooKeeper, watch: { data?: string[]; children?: string[] }, ms: number): Promise<void> {
  await new Promise<void>((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(finish, ms);
    const watcher = () => finish();
    for (const p of watch.data ?? []) void zk.stat(p, watcher).catch(finish);
    for (const p of watch.children ?? []) {
      void zk.listChildren(p, watcher).then((c) => {
        // absent parent: watch for its creation instead
        if (c === null) return zk.stat(p, watcher);
        return null;
      }).catch(finish);
    }
  });
}

interface Progress {
  state: string | null;
  step: string | null;
  builder: string | null;
  log: string | null;
  reason: string | null;
  rc: number | null;
}

function readProgress(d: Record<string, unknown> | null): Progress {
  const s = (k: string) => (typeof d?.[k] === 'string' ? (d[k] as string) : null);
  return {
    state: s('state'), step: s('step'), builder: s('builder'), log: s('log'), reason: s('reason'),
    rc: typeof d?.rc === 'number' ? d.rc : null,
  };
}

/** Providers that will take an upload of this build (§4.5), in config order. */
function uploadTargets(config: Config, image: string, build: ImageBuild): Provider[] {
  const out: Provider[] = [];
  for (const p of config.providers.values()) {
    if (!isCloudProvider(p)) continue;
    const pdi = p.diskimages.find((d) => d.name === image);
    if (pdi === undefined || pdi.pause) continue;
    if (!build.formats.includes(p.imageFormat)) continue;
    out.push(p);
  }
  return out;
}

interface UploadOutcome {
  provider: string;
  upload_id: string | null;
  state: string;
  external_name: string | null;
  external_id: string | null;
}

/**
 * Follow the uploads of one build to `providers` until each reaches `ready` or `failed` (the first
 * such record newer than `knownIds` per provider).
 */
async function followUploads(zk: ZooKeeper, image: string, buildId: string, providers: string[],
  knownIds: Map<string, Set<string>>, since: number, print: Printer, ctx: CommandContext): Promise<UploadOutcome[]> {
  const outcomes = new Map<string, UploadOutcome>();
  const announced = new Map<string, string>();
  /** the upload record we follow per provider (its data changes uploading → ready/failed) */
  const following = new Map<string, string>();
  let lastNews = ctx.now();
  while (outcomes.size < providers.length) {
    const build = await zk.getBuild(image, buildId);
    if (build === null || build.state === 'deleting') {
      for (const p of providers) {
        if (!outcomes.has(p)) outcomes.set(p, { provider: p, upload_id: null, state: 'build deleted', external_name: null, external_id: null });
      }
      print(`[${clock(ctx.now() - since)}] build ${image}-${buildId} was deleted before all uploads finished`);
      break;
    }
    for (const provider of providers) {
      if (outcomes.has(provider)) continue;
      const known = knownIds.get(provider) ?? new Set<string>();
      const uploads = (await zk.getImageUploads(image, buildId, provider)).filter((u) => u.id !== null && !known.has(u.id));
      const latest: ImageUpload | undefined = uploads.sort((a, b) => (a.id ?? '').localeCompare(b.id ?? '')).at(-1);
      if (latest === undefined || latest.id === null) continue;
      following.set(provider, paths.upload(image, buildId, provider, latest.id));
      const key = `${latest.id}/${latest.state}`;
      if (announced.get(provider) !== key) {
        announced.set(provider, key);
        lastNews = ctx.now();
        const what = latest.state === 'ready'
          ? `ready as ${latest.external_name ?? 'None'} (${latest.external_id ?? 'None'})`
          : latest.state;
        print(`[${clock(ctx.now() - since)}] ${provider}: upload ${latest.id} ${what}`);
      }
      if (latest.state === 'ready' || latest.state === 'failed') {
        outcomes.set(provider, {
          provider, upload_id: latest.id, state: latest.state, external_name: latest.external_name, external_id: latest.external_id,
        });
      }
    }
    if (outcomes.size >= providers.length) break;
    if (ctx.now() - lastNews >= HEARTBEAT_S) {
      lastNews = ctx.now();
      const waiting = providers.filter((p) => !outcomes.has(p));
      print(`[${clock(ctx.now() - since)}] waiting for uploads to ${waiting.join(', ')}`);
    }
    await changeOrTimeout(zk, {
      data: [paths.build(image, buildId), ...providers.filter((p) => !outcomes.has(p)).flatMap((p) => {
        const f = following.get(p);
        return f === undefined ? [] : [f];
      })],
      children: providers.filter((p) => !outcomes.has(p)).map((p) => paths.uploads(image, buildId, p)),
    }, POLL_MS);
  }
  return providers.map((p) => outcomes.get(p) ?? { provider: p, upload_id: null, state: 'unknown', external_name: null, external_id: null });
}

/** Wait for a build of `image` whose id is not in `known` (the one our request starts). */
async function newBuildId(zk: ZooKeeper, image: string, known: ReadonlySet<string>, since: number, print: Printer,
  ctx: CommandContext): Promise<string> {
  let lastHint = ctx.now();
  for (;;) {
    const fresh = (await zk.getBuildIds(image)).find((id) => !known.has(id));
    if (fresh !== undefined) return fresh;
    if (ctx.now() - lastHint >= NO_BUILDER_HINT_S) {
      lastHint = ctx.now();
      print(`[${clock(ctx.now() - since)}] no builder has started a build of ${image} yet `
        + '(is a nodepool-builder running with this image in its config?)');
    }
    await changeOrTimeout(zk, { children: [paths.builds(image)], data: [paths.imageBuildRequest(image)] }, POLL_MS);
  }
}

/** `image-build <image> --wait`: follow the requested build, then its uploads. 0 = all ready. */
export const waitForImageBuild: ImageBuildWaiter = async (zk: ZooKeeper, req: ImageBuildWaitRequest, ctx: CommandContext) => {
  const config = await ctx.loadConfig();
  const { image } = req;
  const since = req.requestedAt;
  const print: Printer = (line) => {
    if (!ctx.json) ctx.out(line);
  };
  const known = new Set(req.knownBuildIds);
  print(`Build of ${image} requested; waiting for a builder to start it`);

  // 1. the build our request started: the first build id we did not know
  const buildId = await newBuildId(zk, image, known, since, print, ctx);

  // 2. its progress until ready/failed
  let build: ImageBuild | null = null;
  let progress = readProgress(null);
  let lastStep: string | null = null;
  let lastNews = ctx.now();
  let announcedStart = false;
  const firstSeen = ctx.now();
  for (;;) {
    build = await zk.getBuild(image, buildId);
    progress = readProgress(await zk.getBuildProgress(image, buildId));
    // the progress record (with the log path) follows the build record within moments; a builder
    // that keeps none (Python Nodepool) gets announced without it
    const announce = progress.state !== null || (build !== null && (build.state !== 'building' || ctx.now() - firstSeen >= 2));
    if (!announcedStart && announce) {
      announcedStart = true;
      const host = progress.builder ?? build?.builder ?? 'unknown builder';
      print(`[${clock(ctx.now() - since)}] build ${image}-${buildId} started on ${host}`
        + (progress.log !== null ? `; log ${host}:${progress.log}` : ''));
    }
    if (progress.step !== null && progress.step !== lastStep) {
      lastStep = progress.step;
      lastNews = ctx.now();
      print(`[${clock(ctx.now() - since)}] ${progress.step}`);
    }
    if (build === null || build.state !== 'building') break;
    if (ctx.now() - lastNews >= HEARTBEAT_S) {
      lastNews = ctx.now();
      print(`[${clock(ctx.now() - since)}] still building${lastStep !== null ? `: ${lastStep}` : ''}`);
    }
    await changeOrTimeout(zk, { data: [paths.build(image, buildId), paths.buildProgress(image, buildId)] }, POLL_MS);
  }

  const elapsed = ctx.now() - since;
  const state = build?.state ?? 'deleted';
  if (state !== 'ready') {
    const reason = progress.reason ?? (build === null ? 'the build record was deleted' : `build is ${state}`);
    const where = progress.log !== null ? `${progress.builder ?? build?.builder ?? '?'}:${progress.log}` : null;
    print(`[${clock(elapsed)}] build ${image}-${buildId} FAILED after ${duration(elapsed)}: ${reason}`);
    if (where !== null) print(`build log: ${where}`);
    print(`(the request stays: the builder retries until a build of ${image} succeeds)`);
    if (ctx.json) printJson(ctx, { image, build_id: buildId, state, reason, log: where, uploads: [] });
    return 1;
  }
  const formats = build?.formats.join(',') ?? '';
  print(`[${clock(elapsed)}] build ${image}-${buildId} ready (${formats}) after ${duration(elapsed)}`);

  // 3. its uploads
  const targets = build === null ? [] : uploadTargets(config, image, build).map((p) => p.name);
  let uploads: UploadOutcome[] = [];
  if (targets.length > 0) {
    print(`waiting for uploads to ${targets.join(', ')}`);
    uploads = await followUploads(zk, image, buildId, targets, new Map(), since, print, ctx);
  }
  const ok = uploads.every((u) => u.state === 'ready');
  if (ctx.json) {
    printJson(ctx, { image, build_id: buildId, state, reason: null, log: progress.log, uploads });
  }
  return ok ? 0 : 1;
};

/**
 * `image-upload <provider> <image> [--wait]`: ask the builder holding the newest ready build of
 * `image` to upload it to `provider` again (a `request-upload/<provider>` znode), even though a
 * ready upload exists.
 */
export const imageUploadCommand: Command = async (args, ctx) => {
  const providerName = str(args, 'provider');
  const image = str(args, 'image');
  const config = await ctx.loadConfig();
  const provider = config.providers.get(providerName);
  if (provider === undefined) {
    throw new CliError('ENOTCONFIGURED', `Provider ${providerName} not found`, 1, { provider: providerName });
  }
  if (!isCloudProvider(provider) || !provider.diskimages.some((d) => d.name === image)) {
    throw new CliError('ENOTCONFIGURED', `Image ${image} is not a diskimage of provider ${providerName}`, 1, { provider: providerName, image });
  }
  const zk = await ctx.zookeeper();
  const [build] = await zk.getMostRecentBuilds(1, image, 'ready');
  if (build === undefined || build.id === null) {
    throw new CliError('EFAILED', `No ready build of image ${image} to upload`, 1, { image });
  }
  if (!build.formats.includes(provider.imageFormat)) {
    throw new CliError('EFAILED', `Build ${image}-${build.id} has no ${provider.imageFormat} image for ${providerName} (formats: ${build.formats.join(',')})`, 1, { image });
  }
  const buildId = build.id;
  const known = new Set((await zk.getUploadIds(image, buildId, providerName)));
  const since = ctx.now();
  await zk.submitUploadRequest(image, providerName);
  if (!bool(args, 'wait')) {
    if (ctx.json) printJson(ctx, { image, provider: providerName, build_id: buildId, requested: true });
    return 0;
  }
  const print: Printer = (line) => {
    if (!ctx.json) ctx.out(line);
  };
  print(`Upload of ${image}-${buildId} to ${providerName} requested`);
  const [outcome] = await followUploads(zk, image, buildId, [providerName], new Map([[providerName, known]]), since, print, ctx);
  if (ctx.json) printJson(ctx, { image, provider: providerName, build_id: buildId, upload: outcome ?? null });
  return outcome?.state === 'ready' ? 0 : 1;
};
