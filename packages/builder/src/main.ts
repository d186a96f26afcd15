// `nodepool-builder` command line: Nodepool's flags and signal behaviour.
//   -c config (/etc/nodepool/nodepool.yaml)  -s secure file  -l logging config
//   -p pidfile (/var/run/nodepool/nodepool-builder.pid)  -d foreground + debug  -f foreground
//   --build-workers N (1)  --upload-workers N (4)  --fake (the test stand-in for disk-image-create)
//   beyond Nodepool: --dib-cmd CMD (another disk-image-create), --version
// Without -f/-d the builder detaches (a child in a new session, output to the log file) the way
// Nodepool daemonizes; systemd units run it with -f.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { commonDaemonFlags, runDaemon } from '@nodepool-ts/core/daemon';
import { Builder } from './builder.js';
import { StatsdBuilderMetrics } from './metrics.js';

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
        ...commonDaemonFlags('/var/run/nodepool/nodepool-builder.pid'),
        'build-workers': { type: 'string' },
        'upload-workers': { type: 'string' },
        fake: { type: 'boolean' },
        'dib-cmd': { type: 'string' },
      },
      strict: true,
    }).values;
    buildWorkers = positiveInt(args['build-workers'], '--build-workers', 1);
    uploadWorkers = positiveInt(args['upload-workers'], '--upload-workers', 4);
  } catch (err) {
    process.stderr.write(`${USAGE}nodepool-builder: error: ${(err as Error).message}\n`);
    return 2;
  }
  const values = args;
  return runDaemon({
    name: 'nodepool-builder',
    logger: 'nodepool.builder',
    argv,
    flags: values,
    usage: USAGE,
    version: version(),
    defaultLogFile: '/var/log/nodepool/builder.log',
    stopSignals: ['SIGINT', 'SIGTERM'],
    // running builds get SIGTERM and 30 s to unmount their chroot before SIGKILL
    stopGraceMs: 60_000,
    create: () => new Builder({
      configFile: values.config,
      secureFile: values.secure ?? null,
      buildWorkers,
      uploadWorkers,
      dibCmd: values['dib-cmd'] ?? (values.fake ? FAKE_DIB_CMD : 'disk-image-create'),
      // Nodepool's builder statsd keys when STATSD_HOST is set
      metrics: StatsdBuilderMetrics.fromEnv(process.env),
    }),
  });
}
