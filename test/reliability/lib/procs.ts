// Daemons as real processes, so that kill -9, SIGSTOP and file-descriptor counts are real: the
// launcher (`nodepool-launcher -f`) and the builder (`nodepool-builder -f`), each logging JSON
// lines into a file of its own that the scenarios read back.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '..', '..', '..');
export const LAUNCHER_BIN = join(REPO, 'packages/launcher/bin/nodepool-launcher.js');
export const BUILDER_BIN = join(REPO, 'packages/builder/bin/nodepool-builder.js');

export interface LogLine {
  level: string;
  name?: string;
  msg: string;
  time?: string;
  [key: string]: unknown;
}

export class DaemonProcess {
  readonly child: ChildProcess;
  readonly logFile: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;

  constructor(readonly name: string, bin: string, args: string[], opts: { dir: string; env?: NodeJS.ProcessEnv; nodeArgs?: string[] }) {
    this.logFile = join(opts.dir, `${name}.log`);
    const fd = openSync(this.logFile, 'a');
    try {
      this.child = spawn(process.execPath, [...(opts.nodeArgs ?? []), bin, ...args], {
        cwd: REPO,
        stdio: ['ignore', fd, fd],
        env: { ...process.env, NODEPOOL_LOG_LEVEL: 'info', ...(opts.env ?? {}) },
      });
    } finally {
      closeSync(fd);
    }
    this.exited = new Promise((r) => {
      this.child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        r({ code, signal });
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exitInfo === null;
  }

  /** kill -9: nothing of the process runs any more, its ZooKeeper session dies on its timeout. */
  async kill9(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** Graceful stop (SIGTERM), SIGKILL after `graceMs`. */
  async stop(graceMs = 35_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGCONT');
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }

  pause(): void {
    this.child.kill('SIGSTOP');
  }

  resume(): void {
    this.child.kill('SIGCONT');
  }

  /** Resident set size in kB (from /proc), NaN when gone. */
  rssKb(): number {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
      return m ? Number(m[1]) : NaN;
    } catch {
      return NaN;
    }
  }

  /**
   * Resident memory in kB (from /proc), NaN when gone: all of it, the anonymous part (heaps,
   * malloc arenas, stacks) and the file-backed part (mostly the node binary's code pages, faulted
   * in as code paths are first used; no leak can live there).
   */
  memKb(): { rss: number; anon: number; file: number } {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const field = (name: string): number => {
        const m = new RegExp(`${name}:\\s+(\\d+) kB`).exec(status);
        return m ? Number(m[1]) : NaN;
      };
      return { rss: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile') };
    } catch {
      return { rss: NaN, anon: NaN, file: NaN };
    }
  }

  /** Open file descriptors (sockets, files, pipes), NaN when gone. */
  fdCount(): number {
    try {
      return readdirSync(`/proc/${this.pid}/fd`).length;
    } catch {
      return NaN;
    }
  }

  /** Every JSON log line written so far (non-JSON lines come back as `msg` of level `raw`). */
  logLines(): LogLine[] {
    if (!existsSync(this.logFile)) return [];
    const out: LogLine[] = [];
    for (const l of readFileSync(this.logFile, 'utf8').split('\n')) {
      if (l.trim() === '') continue;
      try {
        out.push(JSON.parse(l) as LogLine);
      } catch {
        out.push({ level: 'raw', msg: l });
      }
    }
    return out;
  }

  /** The last lines of the log, for failure messages. */
  tail(n = 30): string {
    if (!existsSync(this.logFile)) return '';
    return readFileSync(this.logFile, 'utf8').split('\n').slice(-n - 1).join('\n');
  }
}

export interface LauncherProcessOptions {
  dir: string;
  config: string;
  env?: NodeJS.ProcessEnv;
  /** extra daemon flags, e.g. ['--no-history'] */
  flags?: string[];
  nodeArgs?: string[];
}

/** `nodepool-launcher -f -c <cfg> -p <pidfile> --no-webapp` as a child process. */
export class LauncherProcess extends DaemonProcess {
  constructor(name: string, opts: LauncherProcessOptions) {
    super(name, LAUNCHER_BIN, ['-f', '-c', opts.config, '-p', join(opts.dir, `${name}.pid`), '--no-webapp', ...(opts.flags ?? [])],
      { dir: opts.dir, env: opts.env ?? {}, nodeArgs: opts.nodeArgs ?? [] });
  }

  /** The `<hostname>-<pid>-` prefix of this process's pool worker ids (its registrations). */
  get idFragment(): string {
    return `-${this.pid}-PoolWorker.`;
  }

  owns(launcherField: string | null | undefined): boolean {
    return typeof launcherField === 'string' && launcherField.includes(this.idFragment);
  }
}

export interface BuilderProcessOptions {
  dir: string;
  config: string;
  env?: NodeJS.ProcessEnv;
  flags?: string[];
  nodeArgs?: string[];
}

/** `nodepool-builder -f -c <cfg> -p <pidfile> [flags]` as a child process. */
export class BuilderProcess extends DaemonProcess {
  constructor(name: string, opts: BuilderProcessOptions) {
    super(name, BUILDER_BIN, ['-f', '-c', opts.config, '-p', join(opts.dir, `${name}.pid`), ...(opts.flags ?? [])],
      { dir: opts.dir, env: opts.env ?? {}, nodeArgs: opts.nodeArgs ?? [] });
  }
}

/**
 * `--import` of the resource probe (lib/probe.mjs) and its environment, for a soaked daemon;
 * `--expose-gc` lets the probe take one sample a minute after a full collection (the live heap).
 */
export function probeArgs(file: string, everyMs = 5000, gcEveryMs = 60_000): { nodeArgs: string[]; env: NodeJS.ProcessEnv } {
  return {
    nodeArgs: ['--expose-gc', '--import', join(REPO, 'test/reliability/lib/probe.mjs')],
    env: { NODEPOOL_PROBE_FILE: file, NODEPOOL_PROBE_MS: String(everyMs), NODEPOOL_PROBE_GC_MS: String(gcEveryMs) },
  };
}

export interface ProbeSample {
  t: number;
  rss: number;
  heapTotal?: number;
  heapUsed: number;
  external: number;
  arrayBuffers?: number;
  /** taken right after a full garbage collection: heapUsed is the live heap */
  afterGc?: boolean;
  resources: Record<string, number>;
}

export function readProbe(file: string): ProbeSample[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as ProbeSample);
}
