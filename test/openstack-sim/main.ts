// Command-line entry of the simulator (scripts/openstack-sim.sh runs it):
//   node --import tsx test/openstack-sim/main.ts [--port N] [--host H] [--dir DIR] [--config FILE.json] [--tls TLSDIR]
// Prints the Keystone URL once listening. With --dir it also writes DIR/url and DIR/clouds.yaml
// (clouds `sim` and `sim-example`, usable through OS_CLIENT_CONFIG_FILE by the openstack CLI and
// nodepool-ts alike). With --tls it serves HTTPS with a certificate of a test CA made in TLSDIR
// (ca.pem, server.pem, server.key; kept when present), and clouds.yaml has `cacert: TLSDIR/ca.pem`.
// SIGTERM/SIGINT stop it.
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { OpenStackSim, type SimOptions } from './sim.js';
import { simCloudsYaml } from './clouds.js';
import { makeTestPki, simTls } from './tls.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    dir: { type: 'string' },
    config: { type: 'string' },
    tls: { type: 'string' },
  },
});

const extra: SimOptions = values.config ? JSON.parse(readFileSync(values.config, 'utf8')) as SimOptions : {};
const pki = values.tls ? makeTestPki(resolve(values.tls)) : null;
const sim = new OpenStackSim({ ...extra, host: values.host, port: Number(values.port), ...(pki ? { tls: simTls(pki) } : {}) });
await sim.start();
if (values.dir) {
  writeFileSync(join(values.dir, 'clouds.yaml'), simCloudsYaml(sim, '', pki ? { cacert: pki.ca } : {}));
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
