// clouds.yaml entries for the simulator's two users: `sim` (domain Default, by domain name) and
// `sim-example` (domain Example, by domain id), both Keystone v3 password auth. `cacert` (the
// CA of an HTTPS simulator) is written into both.
import { SIM_USERS, type OpenStackSim } from './sim.js';

export function simCloudsYaml(sim: OpenStackSim, extra = '', opts: { cacert?: string } = {}): string {
  const d = SIM_USERS.demo;
  const a = SIM_USERS.alice;
  const tls = opts.cacert ? `\n    cacert: ${opts.cacert}` : '';
  return `clouds:
  sim:
    auth:
      auth_url: ${sim.authUrl}
      username: ${d.username}
      password: ${d.password}
      project_name: ${d.project}
      user_domain_name: ${d.domain}
      project_domain_name: ${d.domain}
    region_name: ${sim.region}
    identity_api_version: 3
    image_format: qcow2${tls}
  sim-example:
    auth:
      auth_url: ${sim.authUrl}
      username: ${a.username}
      password: ${a.password}
      project_name: ${a.project}
      user_domain_name: ${a.domain}
      project_domain_name: ${a.domain}
    region_name: ${sim.region}
    identity_api_version: 3
    image_format: raw${tls}
${extra}`;
}
