// Structured logging for every nodepool-ts component. Daemons log JSON lines (pino), one logger
// per named worker so operators can filter like Nodepool's `nodepool.PoolWorker.<provider>-<pool>`.
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

let root: Logger | null = null;

function defaultLevel(): LevelWithSilent {
  const env = process.env.NODEPOOL_LOG_LEVEL;
  if (env === 'trace' || env === 'debug' || env === 'info' || env === 'warn' || env === 'error'
    || env === 'fatal' || env === 'silent') return env;
  return 'info';
}

/** Configure the root logger once, before workers ask for theirs (daemon start-up). */
export function configureLogging(opts: { level?: LevelWithSilent; destination?: string | number } = {}): Logger {
  const dest = opts.destination ?? 2;
  root = pino(
    {
      level: opts.level ?? defaultLevel(),
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest, sync: true }),
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
