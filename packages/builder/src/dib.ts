// Everything about diskimage-builder that is not scheduling: the command line and environment
// Nodepool gives `disk-image-create` (§4.3), the files a build leaves in images-dir (§4.4), the
// build log and its retention, builder_id.txt, and running the process — output streamed into
// the log as it comes (never polled), progress read from the stream, the build timeout enforced
// on the whole process group.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { constants as fsConstants, createWriteStream, type WriteStream } from 'node:fs';
import { access, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import type { DiskImage } from '@nodepool-ts/core/config';
import { DibProgressParser, type DibProgress } from './progress.js';

/** Nodepool hard-codes this for every qcow2 build (old HP Cloud needed it; works everywhere). */
export const QEMU_IMG_COMPAT_OPTIONS = 'compat=0.10';

/** The elements nodepool-ts ships (`elements/` at the repository root), e.g. nodepool-base. */
export const SHIPPED_ELEMENTS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'elements');

/** `<image>-<build id>`: the base name of every file of a build. */
export function buildBaseName(image: string, buildId: string): string {
  return `${image}-${buildId}`;
}

// ------------------------------------------------------------------------------ local files

/**
 * One local file of a build, `<image>-<build>.<ext>` (Nodepool's DibImageFile): the id is the
 * name up to the LAST dot, so `x-0000000001.qcow2.md5` is not a file of build `x-0000000001`.
 */
export class DibImageFile {
  md5: string | null = null;
  md5File: string | null = null;
  sha256: string | null = null;
  sha256File: string | null = null;

  constructor(readonly imageId: string, readonly extension: string | null = null) {}

  static fromPath(path: string): DibImageFile {
    const name = basename(path);
    const dot = name.lastIndexOf('.');
    return dot < 0 ? new DibImageFile(name, null) : new DibImageFile(name.slice(0, dot), name.slice(dot + 1));
  }

  /** The regular files of one build (`<image>-<build>`) in images-dir; [] if the dir is missing. */
  static async fromImageId(imagesDir: string, imageId: string): Promise<DibImageFile[]> {
    const out: DibImageFile[] = [];
    for (const entry of await listDir(imagesDir)) {
      if (!entry.isFile()) continue;
      const f = DibImageFile.fromPath(entry.name);
      if (f.imageId === imageId) out.push(f);
    }
    return out;
  }

  /** Every entry of images-dir as an image file (directories included, as Nodepool does). */
  static async fromImagesDir(imagesDir: string): Promise<DibImageFile[]> {
    return (await listDir(imagesDir)).map((e) => DibImageFile.fromPath(e.name));
  }

  /** The file's path; reads the `.md5`/`.sha256` files beside it when they exist. */
  async toPath(imagesDir: string, withExtension = true): Promise<string> {
    let path = join(imagesDir, this.imageId);
    if (withExtension) {
      if (this.extension === null) throw new Error('Cannot specify image extension of None');
      path += `.${this.extension}`;
    }
    const md5 = await readOptional(`${path}.md5`);
    if (md5 !== null) {
      this.md5File = `${path}.md5`;
      this.md5 = md5.slice(0, 32);
    }
    const sha256 = await readOptional(`${path}.sha256`);
    if (sha256 !== null) {
      this.sha256File = `${path}.sha256`;
      this.sha256 = sha256.slice(0, 64);
    }
    return path;
  }
}

async function listDir(dir: string): Promise<import('node:fs').Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EISDIR') return null;
    throw err;
  }
}

/**
 * Remove every local trace of a build: `<base>.*` files (images, checksums, partial outputs) and
 * the `<base>.d` manifest directory. Returns the paths removed.
 */
export async function removeBuildFiles(imagesDir: string, base: string): Promise<string[]> {
  const removed: string[] = [];
  for (const entry of await listDir(imagesDir)) {
    const name = entry.name;
    if (name !== base && !name.startsWith(`${base}.`)) continue;
    const p = join(imagesDir, name);
    await rm(p, { recursive: true, force: true });
    removed.push(p);
  }
  return removed;
}

/** Whether images-dir holds any regular file of this build (the owner test of §4.5/§4.6). */
export async function hasLocalFiles(imagesDir: string, base: string): Promise<boolean> {
  return (await DibImageFile.fromImageId(imagesDir, base)).length > 0;
}

// ------------------------------------------------------------------------------ builder id

export const BUILDER_ID_FILE = 'builder_id.txt';

/** The UUID4 in `<images-dir>/builder_id.txt`, created on first start (§4.1). */
export async function readOrCreateBuilderId(imagesDir: string): Promise<string> {
  const path = join(imagesDir, BUILDER_ID_FILE);
  const existing = await readOptional(path);
  if (existing !== null && existing.trim() !== '') return existing.trim();
  await mkdir(imagesDir, { recursive: true });
  const id = randomUUID();
  await writeFile(path, id);
  return id;
}

// ------------------------------------------------------------------------------ build logs

export function buildLogPath(logDir: string, image: string, buildId: string): string {
  return join(logDir, `${buildBaseName(image, buildId)}.log`);
}

/**
 * Keep the newest `max(retention, 1)` logs of `image` (by name, i.e. by build id) and delete the
 * rest; called before each build, so up to retention+1 logs exist after it. Nodepool matches
 * every log whose name merely starts with the image name, which also prunes `<image>-other`'s
 * logs; we match `<image>-<build id>.log` exactly.
 */
export async function pruneBuildLogs(logDir: string, image: string, retention: number): Promise<string[]> {
  const re = new RegExp(`^${escapeRegExp(image)}-\\d+\\.log$`);
  const logs = (await listDir(logDir)).filter((e) => e.isFile() && re.test(e.name)).map((e) => e.name).sort();
  const keep = Math.max(retention, 1);
  const doomed = logs.slice(0, Math.max(0, logs.length - keep));
  for (const name of doomed) await rm(join(logDir, name), { force: true });
  return doomed.map((n) => join(logDir, n));
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ------------------------------------------------------------------------------ command line

/** Split a command string the way Python's shlex.split does for the simple cases we meet. */
export function shellSplit(command: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < command.length; i++) {
    const c = command[i] as string;
    if (quote !== null) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < command.length && '"\\$`'.includes(command[i + 1] as string)) cur += command[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < command.length) {
      cur += command[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

/**
 * `<dib> -x -t <fmt,...> --checksum --no-tmpfs [--qemu-img-options compat=0.10] -o <file> <elements>`
 * (§4.3). Nodepool builds one string and shlex-splits it, so an element entry holding spaces
 * becomes several arguments; we do the same.
 */
export function dibCommand(dibCmd: string, formats: readonly string[], filename: string, elements: readonly string[]): string[] {
  const argv = [...shellSplit(dibCmd), '-x', '-t', formats.join(','), '--checksum', '--no-tmpfs'];
  if (formats.some((f) => f.includes('qcow2'))) argv.push('--qemu-img-options', QEMU_IMG_COMPAT_OPTIONS);
  argv.push('-o', filename);
  for (const e of elements) argv.push(...shellSplit(e));
  return argv;
}

/** The formats to build: the config already holds diskimage formats ∪ provider formats (or qcow2). */
export function buildFormats(diskimage: DiskImage): string[] {
  return [...new Set(diskimage.formats)];
}

export interface DibEnvOptions {
  diskimage: DiskImage;
  /** `<images-dir>/<image>-<build>` (no extension) */
  filename: string;
  /** top-level `elements-dir` */
  elementsDir: string | null;
  /** our shipped elements, appended to ELEMENTS_PATH (null = do not add) */
  shippedElementsDir: string | null;
  /** absolute path of the resolved disk-image-create, whose directory goes first on PATH */
  dibExecutable: string | null;
}

/**
 * The builder's environment plus Nodepool's variables (§4.3), env-vars last so the operator wins.
 * Two additions: our `elements/` is appended to ELEMENTS_PATH (nodepool-base works without
 * copying it), and the directory of disk-image-create goes first on PATH — what Nodepool's
 * virtualenv activation achieves: DIB must run the python3 it was installed for (Debian's
 * /usr/bin/python3), not a pyenv/venv python3 that happens to be first on the daemon's PATH.
 */
export function dibEnvironment(base: NodeJS.ProcessEnv, opts: DibEnvOptions): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  env.DIB_RELEASE = opts.diskimage.release;
  env.DIB_IMAGE_NAME = opts.diskimage.name;
  env.DIB_IMAGE_FILENAME = opts.filename;
  const elementDirs: string[] = [];
  if (opts.elementsDir !== null) elementDirs.push(...opts.elementsDir.split(delimiter).filter((d) => d !== ''));
  else if (env.ELEMENTS_PATH) elementDirs.push(...env.ELEMENTS_PATH.split(delimiter).filter((d) => d !== ''));
  if (opts.shippedElementsDir !== null && !elementDirs.includes(opts.shippedElementsDir)) elementDirs.push(opts.shippedElementsDir);
  if (elementDirs.length > 0) env.ELEMENTS_PATH = elementDirs.join(delimiter);
  if (opts.dibExecutable !== null) {
    const binDir = dirname(opts.dibExecutable);
    const path = (env.PATH ?? '').split(delimiter).filter((d) => d !== '');
    if (path[0] !== binDir) env.PATH = [binDir, ...path.filter((d) => d !== binDir)].join(delimiter);
  }
  for (const [k, v] of Object.entries(opts.diskimage.envVars)) env[k] = v;
  return env;
}

/** The absolute path `command` runs as (PATH lookup for a bare name), or null if not executable. */
export async function resolveExecutable(command: string, pathEnv: string | undefined): Promise<string | null> {
  const candidates = command.includes('/')
    ? [isAbsolute(command) ? command : resolve(command)]
    : (pathEnv ?? '').split(delimiter).filter((d) => d !== '').map((d) => join(d, command));
  for (const c of candidates) {
    try {
      await access(c, fsConstants.X_OK);
      if ((await stat(c)).isFile()) return c;
    } catch {
      // not here
    }
  }
  return null;
}

// ------------------------------------------------------------------------------ running DIB

export interface DibRunOptions {
  argv: readonly string[];
  env: Record<string, string>;
  logFile: string;
  /** `build-timeout` in ms: past it the process group is killed, rc = 1, no exit line (§4.3) */
  timeoutMs: number;
  /** stop() of the builder: the build is killed the same way and reported as aborted */
  signal?: AbortSignal;
  /** SIGTERM first so DIB's cleanup trap unmounts its chroot; SIGKILL after this long */
  killGraceMs?: number;
  /** called for every phase/script change (cheap: the parser only looks at a few line shapes) */
  onProgress?: (p: DibProgress) => void;
}

export interface DibResult {
  rc: number;
  timedOut: boolean;
  aborted: boolean;
  durationMs: number;
  /** the process could not be started (missing command, ...), else null */
  execError: string | null;
  /** writing the build log failed (e.g. ENOSPC); the build itself may still have run */
  logError: string | null;
  /** ms DIB's output was held back because the log file was slower than DIB (back-pressure) */
  outputStalledMs: number;
  progress: DibProgress;
}

const DEFAULT_KILL_GRACE_MS = 30_000;
/** how long output may keep flowing after the main process exited */
const OUTPUT_DRAIN_MS = 10_000;

/** Signal the whole process group (DIB runs sudo, chroot, apt ...); ESRCH = already gone. */
function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      // gone
    }
  }
}

/**
 * Run disk-image-create with stdout+stderr merged (at the file-descriptor level, so the log keeps
 * DIB's ordering), streamed into the log file with back-pressure, scanned for progress on the way.
 * The process leads its own process group so a timeout or stop kills everything it started.
 */
export async function runDib(opts: DibRunOptions): Promise<DibResult> {
  const started = Date.now();
  const parser = new DibProgressParser(started);
  let logError: string | null = null;
  await mkdir(dirname(opts.logFile), { recursive: true }).catch((err: unknown) => {
    logError = `cannot create build log directory: ${(err as Error).message}`;
  });
  const log: WriteStream | null = logError === null ? createWriteStream(opts.logFile, { flags: 'w' }) : null;

  const [cmd, ...args] = opts.argv;
  if (cmd === undefined) throw new Error('runDib: empty command');
  // `exec "$@" 2>&1`: one pipe for both streams, like Popen(stdout=PIPE, stderr=STDOUT)
  const child = spawn('/bin/sh', ['-c', 'exec "$@" 2>&1', 'disk-image-create', cmd, ...args], {
    env: opts.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // A log that cannot be written (full disk) must not stall the build behind back-pressure.
  log?.on('error', (err) => {
    logError ??= `cannot write build log ${opts.logFile}: ${err.message}`;
    child.stdout.resume();
  });
  const logWritable = () => log !== null && logError === null && !log.destroyed;

  let timedOut = false;
  let aborted = false;
  let execError: string | null = null;
  let killTimer: NodeJS.Timeout | null = null;
  const terminate = () => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null || killTimer !== null) return;
    killGroup(child.pid, 'SIGTERM');
    const pid = child.pid;
    killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS);
  };
  const timeout = setTimeout(() => {
    timedOut = true;
    terminate();
  }, Math.max(0, opts.timeoutMs));
  const onAbort = () => {
    aborted = true;
    terminate();
  };
  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener('abort', onAbort, { once: true });

  const decoder = new StringDecoder('utf8');
  const scan = (text: string) => {
    if (parser.feed(text)) opts.onProgress?.(parser.snapshot());
  };
  let stalledMs = 0;
  child.stdout.on('data', (chunk: Buffer) => {
    if (logWritable() && log !== null && !log.write(chunk)) {
      child.stdout.pause();
      const since = Date.now();
      log.once('drain', () => {
        stalledMs += Date.now() - since;
        child.stdout.resume();
      });
    }
    scan(decoder.write(chunk));
  });
  // sh's own complaints (if it cannot exec at all) land in the log too
  child.stderr.on('data', (chunk: Buffer) => {
    if (logWritable()) log?.write(chunk);
    scan(chunk.toString('utf8'));
  });

  const rc = await new Promise<number>((resolveRc) => {
    let exitCode: number | null = null;
    let closeTimer: NodeJS.Timeout | null = null;
    child.on('error', (err) => {
      execError = `Failed to exec '${opts.argv.join(' ')}'. Error: '${err.message}'`;
      resolveRc(127);
    });
    child.on('exit', (code) => {
      exitCode = code ?? 1;
      // A daemon DIB left behind may hold the pipe open forever: give the output a moment to
      // drain, then end the group and stop reading.
      closeTimer = setTimeout(() => {
        if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
        child.stdout.destroy();
        child.stderr.destroy();
        resolveRc(exitCode ?? 1);
      }, OUTPUT_DRAIN_MS);
    });
    child.on('close', (code) => {
      if (closeTimer !== null) clearTimeout(closeTimer);
      resolveRc(exitCode ?? code ?? 1);
    });
  });
  clearTimeout(timeout);
  if (killTimer !== null) clearTimeout(killTimer);
  opts.signal?.removeEventListener('abort', onAbort);
  // whatever the main process left in its group (a stuck sudo child) goes with it
  if (child.pid !== undefined && (timedOut || aborted)) killGroup(child.pid, 'SIGKILL');
  if (parser.feed(decoder.end()) || parser.end()) opts.onProgress?.(parser.snapshot());
  // a hook that failed at once may have done so before its element's scripts were looked up
  await parser.elementsKnown();
  const finalRc = timedOut ? 1 : rc;
  if (log !== null) {
    // Nodepool writes no exit line after a timeout
    if (!timedOut && logWritable()) log.write(`Exit code: ${finalRc}\n`);
    await new Promise<void>((done) => {
      if (log.destroyed) done();
      else log.end(() => done());
    });
  }
  return {
    rc: finalRc, timedOut, aborted, durationMs: Date.now() - started, execError, logError,
    outputStalledMs: stalledMs, progress: parser.snapshot(),
  };
}
