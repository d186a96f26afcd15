// `nodepool-builder` command line: Nodepool's flags and signal behaviour.
//   -c config (/etc/nodepool/nodepool.yaml)  -s secure file  -l logging config
//   -p pidfile (/var/run/nodepool/nodepool-builder.pid)  -d foreground + debug  -f foreground
//   --build-workers N (1)  --upload-workers N (4)  --fake (the test stand-in for disk-image-create)
//   beyond Nodepool: --dib-cmd CMD (another disk-image-create), --version
// Without -f/-d the builder detaches (a child in a new session, output to the log file) the way
// Nodepool daemonizes; systemd units run it with -f.
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { configureLogging, getLogger } from '@nodepool-ts/core/log';
import { Builder } from './builder.js';

/** test/dib/fake-disk-image-create in the repository (what `--fake` runs). */
export const FAKE_DIB_CMD = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'dib', 'fake-disk-image-create');

const USAGE = `usage: nodepool-builder [-h] [-c CONFIG] [-s SECURE] [-l LOGCONFIG] [-p PIDFILE] [-d] [-f]
                        [--build-workers BUILD_WORKERS] [--upload-workers UPLOAD_WORKERS]
                        [--fake] [--dib-cmd DIB_CMD] [--version]

Node pool image builder.

options:
  -h, --help            show this help message and exit
  -c CONFIG             path to config file (default: /etc/nodepool/nodepool.yaml)
  -s SECURE             path to secure file (default: None)
  -l LOGCONFIG          path to log config file (YAML: {level: info, file: /var/log/nodepool/builder.log})
  -p PIDFILE            path to pid file (default: /var/run/nodepool/nodepool-builder.pid)
  -d                    do not run as a daemon, with debug logging
  -f                    do not run as a daemon
  --build-workers BUILD_WORKERS
                        number of build workers (default: 1)
  --upload-workers UPLOAD_WORKERS
                        number of upload workers (default: 4)
  --fake                do not actually run diskimage-builder (used for testing)
  --dib-cmd DIB_CMD     the disk-image-create command to run (default: disk-image-create)
  --version             show program's version number and exit
`;

interface LogConfig {
  level?: string;
  file?: string;
}

function readLogConfig(path: string | undefined): LogConfig {
  if (!path) return {};
  const raw = parseYaml(readFileSync(path, 'utf8')) as unknown;
  if (raw === null || typeof raw !== 'object') throw new Error(`${path}: expected a mapping with level/file`);
  return raw as LogConfig;
}

function positiveInt(value: string | undefined, flag: string, dflt: number): number {
  if (value === undefined) return dflt;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`argument ${flag}: invalid int value: '${value}'`);
  return n;
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export async function main(argv: string[]): Promise<number | undefined> {
  let args;
  let buildWorkers: number;
  let uploadWorkers: number;
  try {
    args = parseArgs({
      args: argv,
      options: {
        help: { type: 'boolean', short: 'h' },
        config: { type: 'string', short: 'c', default: '/etc/nodepool/nodepool.yaml' },
        secure: { type: 'string', short: 's' },
        logconfig: { type: 'string', short: 'l' },
        pidfile: { type: 'string', short: 'p', default: '/var/run/nodepool/nodepool-builder.pid' },
        debug: { type: 'boolean', short: 'd' },
        foreground: { type: 'boolean', short: 'f' },
        'build-workers': { type: 'string' },
        'upload-workers': { type: 'string' },
        fake: { type: 'boolean' },
        'dib-cmd': { type: 'string' },
        version: { type: 'boolean' },
      },
      strict: true,
    }).values;
    buildWorkers = positiveInt(args['build-workers'], '--build-workers', 1);
    uploadWorkers = positiveInt(args['upload-workers'], '--upload-workers', 4);
  } catch (err) {
    process.stderr.write(`${USAGE}nodepool-builder: error: ${(err as Error).message}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.version) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  let logConfig: LogConfig;
  try {
    logConfig = readLogConfig(args.logconfig);
  } catch (err) {
    process.stderr.write(`nodepool-builder: bad log config: ${(err as Error).message}\n`);
    return 1;
  }

  if (!args.foreground && !args.debug) {
    // Daemonize: re-run ourselves detached in the foreground, output appended to the log file.
    const logFile = logConfig.file ?? '/var/log/nodepool/builder.log';
    mkdirSync(dirname(logFile), { recursive: true });
    const out = openSync(logFile, 'a');
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1] ?? '', ...argv, '-f'], {
      detached: true, stdio: ['ignore', out, out],
    });
    child.unref();
    process.stdout.write(`nodepool-builder running as pid ${child.pid}, logging to ${logFile}\n`);
    return 0;
  }

  const level = args.debug ? 'debug' : (logConfig.level as 'info' | undefined) ?? undefined;
  configureLogging({ level, destination: logConfig.file ?? 2 });
  const log = getLogger('nodepool.builder');

  const pidfile = args.pidfile;
  try {
    mkdirSync(dirname(pidfile), { recursive: true });
    writeFileSync(pidfile, `${process.pid}\n`);
  } catch (err) {
    log.warn(`could not write pid file ${pidfile}: ${(err as Error).message}`);
  }

  const builder = new Builder({
    configFile: args.config,
    secureFile: args.secure ?? null,
    buildWorkers,
    uploadWorkers,
    dibCmd: args['dib-cmd'] ?? (args.fake ? FAKE_DIB_CMD : 'disk-image-create'),
  });
  let stopping: Promise<void> | null = null;
  const stop = (signal: string) => {
    if (stopping) return;
    log.info(`Received ${signal}; stopping`);
    // running builds get SIGTERM and 30 s to unmount their chroot before SIGKILL
    const deadline = setTimeout(() => {
      log.error('Graceful stop took longer than 60 s; exiting');
      process.exit(1);
    }, 60_000);
    deadline.unref();
    stopping = builder.stop().finally(() => {
      rmSync(pidfile, { force: true });
      clearTimeout(deadline);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGUSR2', () => log.info({ state: builder.describe() }, 'State dump (SIGUSR2)'));

  try {
    await builder.start();
  } catch (err) {
    log.error({ err: (err as Error).message }, `nodepool-builder failed to start: ${(err as Error).message}`);
    process.stderr.write(`nodepool-builder: ${(err as Error).message}\n`);
    await builder.stop().catch(() => undefined);
    rmSync(pidfile, { force: true });
    return 1;
  }
  await new Promise<void>((resolveStop) => {
    const check = setInterval(() => {
      if (stopping) {
        clearInterval(check);
        void stopping.then(resolveStop);
      }
    }, 100);
  });
  return 0;
}
