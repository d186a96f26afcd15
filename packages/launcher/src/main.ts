// `nodepool-launcher` command line: Nodepool's flags and signal behaviour.
//   -c config (/etc/nodepool/nodepool.yaml)  -s secure file  -l logging config  -p pidfile
//   -d foreground + debug  -f foreground  --no-webapp  --version
// Without -f/-d the launcher detaches (a child in a new session, output to the log file) the way
// Nodepool daemonizes; systemd units run it with -f.
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { configureLogging, getLogger } from '@nodepool-ts/core/log';
import { Launcher } from './launcher.js';
import { VERSION } from './version.js';

const USAGE = `usage: nodepool-launcher [-h] [-c CONFIG] [-s SECURE] [-l LOGCONFIG] [-p PIDFILE] [-d] [-f] [--no-webapp] [--no-history] [--version]

Node pool launcher.

options:
  -h, --help     show this help message and exit
  -c CONFIG      path to config file (default: /etc/nodepool/nodepool.yaml)
  -s SECURE      path to secure file (default: None)
  -l LOGCONFIG   path to log config file (YAML: {level: info, file: /var/log/nodepool/launcher.log})
  -p PIDFILE     path to pid file (default: /var/run/nodepool/nodepool.pid)
  -d             do not run as a daemon, with debug logging
  -f             do not run as a daemon
  --no-webapp    do not start the web API and dashboard
  --no-history   do not record node and request history in the database
  --version      show program's version number and exit
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

export async function main(argv: string[]): Promise<number | undefined> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        help: { type: 'boolean', short: 'h' },
        config: { type: 'string', short: 'c', default: '/etc/nodepool/nodepool.yaml' },
        secure: { type: 'string', short: 's' },
        logconfig: { type: 'string', short: 'l' },
        pidfile: { type: 'string', short: 'p', default: '/var/run/nodepool/nodepool.pid' },
        debug: { type: 'boolean', short: 'd' },
        foreground: { type: 'boolean', short: 'f' },
        'no-webapp': { type: 'boolean' },
        'no-history': { type: 'boolean' },
        version: { type: 'boolean' },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`${USAGE}nodepool-launcher: error: ${(err as Error).message}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.version) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  let logConfig: LogConfig;
  try {
    logConfig = readLogConfig(args.logconfig);
  } catch (err) {
    process.stderr.write(`nodepool-launcher: bad log config: ${(err as Error).message}\n`);
    return 1;
  }

  if (!args.foreground && !args.debug) {
    // Daemonize: re-run ourselves detached in the foreground, output appended to the log file.
    const logFile = logConfig.file ?? '/var/log/nodepool/launcher.log';
    mkdirSync(dirname(logFile), { recursive: true });
    const out = openSync(logFile, 'a');
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1] ?? '', ...argv, '-f'], {
      detached: true, stdio: ['ignore', out, out],
    });
    child.unref();
    process.stdout.write(`nodepool-launcher running as pid ${child.pid}, logging to ${logFile}\n`);
    return 0;
  }

  const level = args.debug ? 'debug' : (logConfig.level as 'info' | undefined) ?? undefined;
  configureLogging({ level, destination: logConfig.file ?? 2 });
  const log = getLogger('nodepool.launcher');

  const pidfile = args.pidfile;
  try {
    mkdirSync(dirname(pidfile), { recursive: true });
    writeFileSync(pidfile, `${process.pid}\n`);
  } catch (err) {
    log.warn(`could not write pid file ${pidfile}: ${(err as Error).message}`);
  }

  const launcher = new Launcher({
    configFile: args.config,
    secureFile: args.secure ?? null,
    webapp: !args['no-webapp'],
    record: !args['no-history'],
  });
  let stopping: Promise<void> | null = null;
  const stop = (signal: string) => {
    if (stopping) return;
    log.info(`Received ${signal}; stopping`);
    const deadline = setTimeout(() => {
      log.error('Graceful stop took longer than 30 s; exiting');
      process.exit(1);
    }, 30_000);
    deadline.unref();
    stopping = launcher.stop().finally(() => {
      rmSync(pidfile, { force: true });
      clearTimeout(deadline);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGUSR1', () => stop('SIGUSR1'));
  process.on('SIGUSR2', () => log.info({ state: launcher.describe() }, 'State dump (SIGUSR2)'));

  try {
    await launcher.start();
  } catch (err) {
    log.error({ err: (err as Error).message }, `nodepool-launcher failed to start: ${(err as Error).message}`);
    process.stderr.write(`nodepool-launcher: ${(err as Error).message}\n`);
    await launcher.stop().catch(() => undefined);
    rmSync(pidfile, { force: true });
    return 1;
  }
  await new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (stopping) {
        clearInterval(check);
        void stopping.then(resolve);
      }
    }, 100);
  });
  return 0;
}
