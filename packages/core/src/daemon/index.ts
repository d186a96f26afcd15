// What nodepool-launcher and nodepool-builder share as daemons: Nodepool's -l/-p/-d/-f handling,
// detaching, the pid file, and signals (SIGINT/SIGTERM/SIGUSR1 stop gracefully within a bound,
// SIGUSR2 dumps state). Each daemon keeps its own flags and service object.
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { configureLogging, getLogger, readLogConfig, type LogSettings, type Logger } from '../log/index.js';

/** set by a daemon for the copy of itself it detaches: the log file it was told to use */
const DETACHED_LOG_ENV = 'NODEPOOL_DAEMON_LOG_FILE';

export interface Service {
  start(): Promise<void>;
  stop(): Promise<void>;
  describe(): Record<string, unknown>;
}

/**
 * A service's start-up in flight, for a stop() that may come during it (a signal at start-up):
 * stop() waits for it to settle, and the start steps give up once they see the stop, so that
 * everything they made is there to tear down and nothing is made afterwards.
 */
export class StartUp {
  private pending: Promise<void> | null = null;

  /** Run the start steps (start() awaits this). */
  async run(steps: () => Promise<void>): Promise<void> {
    this.pending = steps();
    try {
      await this.pending;
    } finally {
      this.pending = null;
    }
  }

  get inFlight(): boolean {
    return this.pending !== null;
  }

  /** Wait for the start steps to end, however they end. */
  async settled(): Promise<void> {
    await this.pending?.catch(() => undefined);
  }
}

/** The flags both daemons take from Nodepool, for node:util parseArgs. */
export function commonDaemonFlags(defaultPidfile: string) {
  return {
    help: { type: 'boolean', short: 'h' },
    config: { type: 'string', short: 'c', default: '/etc/nodepool/nodepool.yaml' },
    secure: { type: 'string', short: 's' },
    logconfig: { type: 'string', short: 'l' },
    pidfile: { type: 'string', short: 'p', default: defaultPidfile },
    debug: { type: 'boolean', short: 'd' },
    foreground: { type: 'boolean', short: 'f' },
    version: { type: 'boolean' },
  } as const;
}

export interface CommonFlags {
  help?: boolean;
  version?: boolean;
  logconfig?: string;
  pidfile: string;
  debug?: boolean;
  foreground?: boolean;
}

export interface DaemonOptions {
  /** program name for messages, e.g. `nodepool-launcher` */
  name: string;
  /** logger name, e.g. `nodepool.launcher` */
  logger: string;
  argv: string[];
  flags: CommonFlags;
  usage: string;
  version: string;
  /** log file when detaching without `file:` in the log config */
  defaultLogFile: string;
  /** signals that stop gracefully */
  stopSignals: NodeJS.Signals[];
  /** how long a graceful stop may take before the process exits anyway */
  stopGraceMs: number;
  /** builds the service once logging is configured */
  create(log: Logger): Service;
}

/**
 * Run a daemon the Nodepool way. Without -f/-d it re-runs itself detached in the foreground with
 * output appended to the log file, and returns at once. Otherwise it writes the pid file, starts
 * the service and resolves with the exit code once a stop signal has been handled.
 */
export async function runDaemon(o: DaemonOptions): Promise<number> {
  if (o.flags.help) {
    process.stdout.write(o.usage);
    return 0;
  }
  if (o.flags.version) {
    process.stdout.write(`${o.version}\n`);
    return 0;
  }
  let logConfig: LogSettings;
  try {
    logConfig = readLogConfig(o.flags.logconfig);
  } catch (err) {
    process.stderr.write(`${o.name}: bad log config: ${(err as Error).message}\n`);
    return 1;
  }
  const pidfile = o.flags.pidfile;
  if (!o.flags.foreground && !o.flags.debug) {
    const logFile = logConfig.file ?? o.defaultLogFile;
    mkdirSync(dirname(logFile), { recursive: true });
    const out = openSync(logFile, 'a');
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1] ?? '', ...o.argv, '-f'], {
      detached: true, stdio: ['ignore', out, out], env: { ...process.env, [DETACHED_LOG_ENV]: logFile },
    });
    child.unref();
    process.stdout.write(`${o.name} running as pid ${child.pid}, logging to ${logFile}\n`);
    return 0;
  }

  const level = o.flags.debug ? 'debug' : logConfig.level;
  // (detached: the log file by name, so that it can be reopened after a rotation)
  const detachedLog = process.env[DETACHED_LOG_ENV];
  delete process.env[DETACHED_LOG_ENV];
  configureLogging({ level, destination: logConfig.file ?? detachedLog ?? (logConfig.stream === 'stdout' ? 1 : 2) });
  const log = getLogger(o.logger);
  for (const note of logConfig.notes) log.info(`log config ${o.flags.logconfig ?? ''}: ${note}`);
  try {
    mkdirSync(dirname(pidfile), { recursive: true });
    writeFileSync(pidfile, `${process.pid}\n`);
  } catch (err) {
    log.warn(`could not write pid file ${pidfile}: ${(err as Error).message}`);
  }

  const service = o.create(log);
  let stopping: Promise<void> | null = null;
  let stopped!: () => void;
  const done = new Promise<void>((r) => { stopped = r; });
  const stop = (signal: string): void => {
    if (stopping) return;
    log.info(`Received ${signal}; stopping`);
    const deadline = setTimeout(() => {
      log.error(`Graceful stop took longer than ${o.stopGraceMs / 1000} s; exiting`);
      process.exit(1);
    }, o.stopGraceMs);
    deadline.unref();
    stopping = service.stop().finally(() => {
      rmSync(pidfile, { force: true });
      clearTimeout(deadline);
      stopped();
    });
  };
  for (const sig of o.stopSignals) process.on(sig, () => stop(sig));
  process.on('SIGUSR2', () => log.info({ state: service.describe() }, 'State dump (SIGUSR2)'));

  try {
    await service.start();
  } catch (err) {
    if (stopping) {
      // a stop signal during start-up: the service failing to finish starting is the stop
      await done;
      return 0;
    }
    log.error({ err: (err as Error).message }, `${o.name} failed to start: ${(err as Error).message}`);
    process.stderr.write(`${o.name}: ${(err as Error).message}\n`);
    await service.stop().catch(() => undefined);
    rmSync(pidfile, { force: true });
    return 1;
  }
  await done;
  return 0;
}
