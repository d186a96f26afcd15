// The OpenStack API simulator for tests: see sim.ts.
export { OpenStackSim, SIM_USERS, DEFAULT_SIM_FLAVORS, DEFAULT_SIM_IMAGE } from './sim.js';
export type { SimOptions } from './sim.js';
export type {
  FaultRule, SimFaults, SimLimits, SimServer, SimImage, SimPort, SimFloatingIp, SimAppCredential,
} from './model.js';
export { simCloudsYaml } from './clouds.js';
export { makeTestPki, simTls, type TestPki } from './tls.js';
