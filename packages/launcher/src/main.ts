// `nodepool-launcher` command line: Nodepool's flags and signal behaviour.
//   -c config (/etc/nodepool/nodepool.yaml)  -s secure file  -l logging config  -p pidfile
//   -d foreground + debug  -f foreground  --no-webapp  --version
// Without -f/-d the launcher detaches (a child in a new session, output to the log file) the way
// Nodepool daemonizes; systemd units run it with -f.
import { parseArgs } from 'node:util';
import { commonDaemonFlags, runDaemon } from '@nodepool-ts/core/daemon';
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

export async function main(argv: string[]): Promise<number | undefined> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        ...commonDaemonFlags('/var/run/nodepool/nodepool.pid'),
        'no-webapp': { type: 'boolean' },
        'no-history': { type: 'boolean' },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`${USAGE}nodepool-launcher: error: ${(err as Error).message}\n`);
    return 2;
  }
  const values = args;
  return runDaemon({
    name: 'nodepool-launcher',
    logger: 'nodepool.launcher',
    argv,
    flags: values,
    usage: USAGE,
    version: VERSION,
    defaultLogFile: '/var/log/nodepool/launcher.log',
    // Nodepool: SIGINT/SIGUSR1 stop gracefully, SIGTERM exits at once; here SIGTERM is graceful too
    stopSignals: ['SIGINT', 'SIGTERM', 'SIGUSR1'],
    stopGraceMs: 30_000,
    create: () => new Launcher({
      configFile: values.config,
      secureFile: values.secure ?? null,
      webapp: !values['no-webapp'],
      record: !values['no-history'],
    }),
  });
}
