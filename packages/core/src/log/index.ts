// Structured logging for every nodepool-ts component. Daemons log JSON lines (pino), one logger
// per named worker so operators can filter like Nodepool's `nodepool.PoolWorker.<provider>-<pool>`.
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';
export * from './config.js';

/** how often a log file's identity is checked (a moved file is reopened) */
const LOG_FILE_CHECK_MS = 1000;

let root: Logger | null = null;
let reopenable: { file: string; reopen: () => void; onHup: () => void; onStat: (cur: Stats, prev: Stats) => void } | null = null;

/** Stop following a log file (a new configureLogging, or tests). */
function forgetLogFile(): void {
  if (reopenable === null) return;
  process.off('SIGHUP', reopenable.onHup);
  unwatchFile(reopenable.file, reopenable.onStat);
  reopenable = null;
}

function defaultLevel(): LevelWithSilent {
  const env = process.env.NODEPOOL_LOG_LEVEL;
  if (env === 'trace' || env === 'debug' || env === 'info' || env === 'warn' || env === 'error'
    || env === 'fatal' || env === 'silent') return env;
  return 'info';
}

/** Configure the root logger once, before workers ask for theirs (daemon start-up). */
export function configureLogging(opts: { level?: LevelWithSilent; destination?: string | number } = {}): Logger {
  const dest = opts.destination ?? 2;
  forgetLogFile();
  const stream = pino.destination({ dest, sync: true, mkdir: typeof dest === 'string' });
  if (typeof dest === 'string') {
    // Like Python's WatchedFileHandler (Nodepool's default): a log file moved away by logrotate
    // is reopened under its name; SIGHUP reopens it too (logrotate's postrotate convention).
    const reopen = (): void => stream.reopen();
    reopenable = {
      file: dest,
      reopen,
      onHup: reopen,
      onStat: (cur, prev) => {
        if (cur.ino !== prev.ino || cur.dev !== prev.dev || cur.nlink === 0) reopen();
      },
    };
    process.on('SIGHUP', reopenable.onHup);
    watchFile(dest, { interval: LOG_FILE_CHECK_MS, persistent: false }, reopenable.onStat);
  }
  root = pino(
    {
      level: opts.level ?? defaultLevel(),
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
  return root;
}

function getRoot(): Logger {
  return root ?? configureLogging();
}

/** A child logger named like Nodepool's loggers, e.g. `nodepool.PoolWorker.fake-provider-main`. */
export function getLogger(name: string, bindings: Record<string, unknown> = {}): Logger {
  return getRoot().child({ name, ...bindings });
}

/** The log file being written, if any (reopened when moved away and on SIGHUP). */
export function currentLogFile(): string | null {
  return reopenable?.file ?? null;
}

/** Reopen the log file now (what SIGHUP does). */
export function reopenLogFile(): void {
  reopenable?.reopen();
}
