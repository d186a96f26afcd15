// A real `nodepool-launcher -f` process, as the launcher benchmark (bench/launcher.ts) runs it and
// as tests that check what a benchmark run leaves behind start it (test/launcher/bench-history).
//   BENCH_LAUNCHER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the launcher.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
export const LAUNCHER_BIN = join(root, 'packages/launcher/bin/nodepool-launcher.js');

export interface LauncherProcessOptions {
  /** NODEPOOL_STATE_DIR of the launcher (SQLite history file, spill file) */
  stateDir: string;
  /** directory for the pid file */
  runDir: string;
  /** record history (default true); false passes --no-history */
  history?: boolean;
  /** NODEPOOL_LOG_LEVEL (default error) */
  logLevel?: string;
}

export function startLauncher(cfg: string, opts: LauncherProcessOptions): ChildProcess {
  const nodeArgs = (process.env.BENCH_LAUNCHER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  return spawn(process.execPath, [...nodeArgs, LAUNCHER_BIN, '-f', '-c', cfg,
    '-p', join(opts.runDir, `launcher-${randomBytes(3).toString('hex')}.pid`), '--no-webapp',
    ...(opts.history === false ? ['--no-history'] : [])],
  { stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, NODEPOOL_LOG_LEVEL: opts.logLevel ?? 'error', NODEPOOL_STATE_DIR: opts.stateDir } });
}

/** SIGINT (a clean stop: the recorder writes what it holds), then its exit code. */
export async function stopLauncher(p: ChildProcess): Promise<number | null> {
  if (p.exitCode !== null || p.signalCode !== null) return p.exitCode;
  const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  p.kill('SIGINT');
  return exited;
}
