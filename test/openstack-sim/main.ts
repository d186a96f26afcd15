// Command-line entry of the simulator (scripts/openstack-sim.sh runs it):
//   node --import tsx test/openstack-sim/main.ts [--port N] [--host H] [--dir DIR] [--config FILE.json]
// Prints the Keystone URL once listening. With --dir it also writes DIR/url and DIR/clouds.yaml
// (clouds `sim` and `sim-example`, usable through OS_CLIENT_CONFIG_FILE by the openstack CLI and
// nodepool-ts alike). SIGTERM/SIGINT stop it.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { OpenStackSim, type SimOptions } from './sim.js';
import { simCloudsYaml } from './clouds.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    dir: { type: 'string' },
    config: { type: 'string' },
  },
});

const extra: SimOptions = values.config ? JSON.parse(readFileSync(values.config, 'utf8')) as SimOptions : {};
const sim = new OpenStackSim({ ...extra, host: values.host, port: Number(values.port) });
await sim.start();
if (values.dir) {
  writeFileSync(join(values.dir, 'clouds.yaml'), simCloudsYaml(sim));
  writeFileSync(join(values.dir, 'url'), `${sim.authUrl}\n`);
}
process.stdout.write(`${sim.authUrl}\n`);

let stopping = false;
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    void sim.stop().then(() => process.exit(0));
  });
}
