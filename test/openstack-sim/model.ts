// The simulated cloud's state and its knobs. One project per user, one region, every service
// on one port under devstack-like prefixes (/identity, /compute/v2.1, /image, /network).
import type { Service } from './http.js';

export interface SimUser {
  id: string;
  name: string;
  password: string;
  domainId: string;
  /** projects this user has a role on */
  projects: string[];
}

export interface SimDomain { id: string; name: string }

/** A Keystone application credential: authenticates as its user, scoped to its project. */
export interface SimAppCredential {
  id: string;
  name: string;
  secret: string;
  userId: string;
  projectId: string;
  description: string;
  /** null: never expires */
  expiresAt: Date | null;
}

export interface SimProject { id: string; name: string; domainId: string }

export interface SimFlavor {
  id: string;
  name: string;
  vcpus: number;
  /** MB */
  ram: number;
  /** GB */
  disk: number;
  ephemeral: number;
  swap: number;
  isPublic: boolean;
}

export interface SimNetwork {
  id: string;
  name: string;
  projectId: string;
  external: boolean;
  shared: boolean;
  subnetId: string;
  cidr: string;
  gateway: string;
  /** next host offset handed out in the cidr */
  nextHost: number;
  createdAt: Date;
}

export type PortStatus = 'ACTIVE' | 'DOWN' | 'BUILD';

export interface SimPort {
  id: string;
  name: string;
  networkId: string;
  subnetId: string;
  projectId: string;
  deviceId: string;
  deviceOwner: string;
  status: PortStatus;
  ip: string;
  mac: string;
  /** `binding:host_id` (set by a real Nova when it binds the port) */
  bindingHost: string;
  createdAt: Date;
}

export interface SimFloatingIp {
  id: string;
  address: string;
  networkId: string;
  projectId: string;
  portId: string | null;
  fixedIp: string | null;
  description: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface SimSecurityGroup { id: string; name: string; projectId: string; description: string }

export type ServerStatus = 'BUILD' | 'ACTIVE' | 'ERROR';

export interface SimServer {
  id: string;
  name: string;
  projectId: string;
  userId: string;
  flavorId: string;
  imageId: string | null;
  volume: { id: string; size: number; deleteOnTermination: boolean } | null;
  metadata: Record<string, string>;
  keyName: string | null;
  securityGroups: string[];
  az: string;
  userData: string | null;
  configDrive: boolean;
  hostId: string;
  status: ServerStatus;
  /** vm_state/task_state as Nova reports them */
  vmState: string;
  taskState: string | null;
  fault: { code: number; message: string; details: string; created: Date } | null;
  portIds: string[];
  createdAt: Date;
  updatedAt: Date;
  launchedAt: Date | null;
  /** set once DELETE was accepted */
  deletingSince: Date | null;
  adminPass: string;
  /** public key of the host key the simulated sshd of this server presents */
  hostKey: string | null;
}

export type ImageStatus = 'queued' | 'saving' | 'active' | 'killed' | 'deleted' | 'importing';

export interface SimImage {
  id: string;
  name: string | null;
  status: ImageStatus;
  visibility: 'public' | 'private' | 'shared' | 'community';
  protected: boolean;
  diskFormat: string | null;
  containerFormat: string | null;
  size: number | null;
  checksum: string | null;
  osHashValue: string | null;
  owner: string;
  minDisk: number;
  minRam: number;
  tags: string[];
  /** additional properties (glance v2 puts them at top level) */
  props: Record<string, string>;
  createdAt: Date;
  updatedAt: Date;
}

export interface SimKeypair {
  name: string;
  userId: string;
  publicKey: string;
  fingerprint: string;
  type: 'ssh' | 'x509';
  createdAt: Date;
}

export interface SimLimits {
  instances: number;
  cores: number;
  /** MB */
  ram: number;
  floatingIps: number;
  keypairs: number;
  serverMeta: number;
}

/**
 * Inject an HTTP-level failure: every request matching all the given fields is delayed and/or
 * answered with `status` (in that service's error format) instead of being served.
 */
export interface FaultRule {
  service?: Service;
  /** HTTP verb, case-insensitive */
  method?: string;
  /** regular expression matched against the path below the service prefix */
  path?: string;
  /** answer this status instead of serving the request */
  status?: number;
  /** error message for `status` */
  message?: string;
  /** wait this long before answering (or serving) */
  delayMs?: number;
  /** never answer (the connection stays open until the client gives up or the sim stops) */
  hang?: boolean;
  /** apply to this many requests, then drop the rule; unset = forever */
  times?: number;
  /** apply with this probability (0..1); unset = always */
  probability?: number;
}

export interface SimFaults {
  rules: FaultRule[];
  /** what a new server ends as: ACTIVE, ERROR, or BUILD (stuck forever) */
  bootResult: 'ACTIVE' | 'ERROR' | 'BUILD';
  /** the next this-many new servers go to ERROR whatever bootResult says (counts down) */
  errorNextBoots: number;
  /** the next this-many new servers stay in BUILD forever (counts down) */
  stuckNextBoots: number;
  /** how long new servers stay in BUILD */
  bootDelayMs: number;
  /** how long a deleted server stays visible (task_state deleting) */
  deleteDelayMs: number;
  /** deletes are accepted but the server never goes away */
  deleteHang: boolean;
  /** every server create is refused with Nova's 403 "Quota exceeded for instances" */
  quotaExceeded: boolean;
  /** deleted servers leave their ports behind, DOWN (the Neutron leak Nodepool cleans up) */
  leakPortsOnDelete: boolean;
  /** ACTIVE servers report no addresses */
  noAddresses: boolean;
  /** simulated sshds do not listen (keyscan times out) */
  sshDown: boolean;
  /** the whole cloud is down: every connection is reset */
  down: boolean;
}

export function defaultFaults(): SimFaults {
  return {
    rules: [], bootResult: 'ACTIVE', errorNextBoots: 0, stuckNextBoots: 0, bootDelayMs: 50, deleteDelayMs: 50, deleteHang: false,
    quotaExceeded: false, leakPortsOnDelete: false, noAddresses: false, sshDown: false, down: false,
  };
}

export interface SimState {
  domains: Map<string, SimDomain>;
  projects: Map<string, SimProject>;
  users: Map<string, SimUser>;
  appCredentials: Map<string, SimAppCredential>;
  flavors: Map<string, SimFlavor>;
  azs: string[];
  networks: Map<string, SimNetwork>;
  ports: Map<string, SimPort>;
  floatingIps: Map<string, SimFloatingIp>;
  securityGroups: Map<string, SimSecurityGroup>;
  servers: Map<string, SimServer>;
  images: Map<string, SimImage>;
  keypairs: Map<string, SimKeypair>;
  limits: SimLimits;
}
