// Keystone v3: version discovery, password and token authentication with domains, project-scoped
// tokens with the service catalog, token validation and revocation.
import { randomBytes } from 'node:crypto';
import {
  HttpError, isoMicro, readJson, serviceError, unauthorized,
  type SimRequest, type SimResponse, type TokenInfo,
} from './http.js';
import type { SimProject, SimUser } from './model.js';
import type { OpenStackSim } from './sim.js';

const IDENTITY_VERSION = {
  id: 'v3.14',
  status: 'stable',
  updated: '2020-04-07T00:00:00Z',
  'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' }],
};

function versionDoc(sim: OpenStackSim): Record<string, unknown> {
  return { ...IDENTITY_VERSION, links: [{ rel: 'self', href: `${sim.base}/identity/v3/` }] };
}

export async function handleIdentity(sim: OpenStackSim, req: SimRequest): Promise<SimResponse> {
  const path = req.path.replace(/\/+$/, '') || '/';
  if (req.method === 'GET' && path === '/') {
    return { status: 300, body: { versions: { values: [versionDoc(sim)] } } };
  }
  if (req.method === 'GET' && path === '/v3') return { status: 200, body: { version: versionDoc(sim) } };
  if (path === '/v3/auth/tokens') {
    if (req.method === 'POST') return issueToken(sim, req);
    if (req.method === 'GET' || req.method === 'HEAD') return validateToken(sim, req);
    if (req.method === 'DELETE') {
      sim.requireAuth(req);
      const subject = header(req, 'x-subject-token');
      if (!subject || !sim.tokens.delete(subject)) {
        throw new HttpError(serviceError('identity', 404, 'Could not find token.'));
      }
      return { status: 204 };
    }
  }
  if (req.method === 'GET' && path === '/v3/auth/catalog') {
    const t = sim.requireAuth(req);
    return { status: 200, body: { catalog: catalog(sim, t), links: { self: `${sim.base}/identity/v3/auth/catalog` } } };
  }
  if (req.method === 'GET' && path === '/v3/auth/projects') {
    const t = sim.requireAuth(req);
    const user = sim.state.users.get(t.userId);
    const projects = (user?.projects ?? []).map((id) => sim.state.projects.get(id)).filter((p) => p !== undefined);
    return { status: 200, body: { projects: projects.map((p) => projectJson(sim, p)), links: {} } };
  }
  return serviceError('identity', 404, 'The resource could not be found.');
}

function header(req: SimRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function projectJson(sim: OpenStackSim, p: SimProject): Record<string, unknown> {
  return {
    id: p.id, name: p.name, domain_id: p.domainId, description: '', enabled: true, is_domain: false,
    parent_id: p.domainId, tags: [], links: { self: `${sim.base}/identity/v3/projects/${p.id}` },
  };
}

function validation(message: string): HttpError {
  return new HttpError(serviceError('identity', 400,
    `${message} The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.`));
}

function obj(v: unknown): Record<string, unknown> | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : null;
}

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

/** Resolve `{id}` or `{name}` of a domain reference. */
function findDomain(sim: OpenStackSim, ref: Record<string, unknown> | null): string | null {
  if (!ref) return null;
  const id = str(ref.id);
  if (id !== null) return sim.state.domains.has(id) ? id : '';
  const name = str(ref.name);
  if (name !== null) {
    for (const d of sim.state.domains.values()) if (d.name === name) return d.id;
    return '';
  }
  return null;
}

async function issueToken(sim: OpenStackSim, req: SimRequest): Promise<SimResponse> {
  const body = await readJson(req);
  const auth = obj(body.auth);
  const identity = obj(auth?.identity);
  if (!auth || !identity) throw validation("'identity' is a required property.");
  const methods = Array.isArray(identity.methods) ? identity.methods : [];
  let user: SimUser | undefined;
  let method: string;
  if (methods.includes('password')) {
    method = 'password';
    const u = obj(obj(identity.password)?.user);
    if (!u) throw validation("Expecting to find user in password.");
    const password = str(u.password);
    if (password === null) throw validation("'password' is a required property.");
    const id = str(u.id);
    if (id !== null) {
      user = sim.state.users.get(id);
    } else {
      const name = str(u.name);
      if (name === null) throw validation('Expecting to find id or name in user.');
      const domain = findDomain(sim, obj(u.domain));
      if (domain === null) throw validation('Expecting to find domain in user.');
      user = [...sim.state.users.values()].find((x) => x.name === name && x.domainId === domain);
    }
    // Keystone never says which part was wrong.
    if (!user || user.password !== password) throw new HttpError(unauthorized());
  } else if (methods.includes('token')) {
    method = 'token';
    const t = sim.tokenFor(str(obj(identity.token)?.id) ?? undefined);
    if (!t) throw new HttpError(unauthorized());
    user = sim.state.users.get(t.userId);
    if (!user) throw new HttpError(unauthorized());
  } else {
    throw validation('Unsupported authentication method.');
  }

  const scope = obj(auth.scope);
  const projectRef = obj(scope?.project);
  let project: SimProject | undefined;
  if (projectRef) {
    const pid = str(projectRef.id);
    if (pid !== null) {
      project = sim.state.projects.get(pid);
    } else {
      const pname = str(projectRef.name);
      const domain = findDomain(sim, obj(projectRef.domain));
      if (pname === null) throw validation('Expecting to find id or name in project.');
      if (domain === null) throw validation('Expecting to find domain in project.');
      project = [...sim.state.projects.values()].find((p) => p.name === pname && p.domainId === domain);
    }
    if (!project || !user.projects.includes(project.id)) throw new HttpError(unauthorized());
  } else if (!scope) {
    // an unscoped token: default project of the user, as keystone does when one is set
    const first = user.projects[0];
    project = first !== undefined ? sim.state.projects.get(first) : undefined;
  } else {
    throw validation('Only project scope is supported by this simulator.');
  }
  if (!project) throw new HttpError(unauthorized());

  const now = new Date();
  const token: TokenInfo = {
    id: `gAAAAA${randomBytes(90).toString('base64url')}`,
    userId: user.id,
    userName: user.name,
    domainId: user.domainId,
    projectId: project.id,
    projectName: project.name,
    issuedAt: now,
    expiresAt: new Date(now.getTime() + sim.tokenTtlMs),
  };
  sim.tokens.set(token.id, token);
  return { status: 201, headers: { 'X-Subject-Token': token.id }, body: { token: tokenBody(sim, token, [method]) } };
}

function validateToken(sim: OpenStackSim, req: SimRequest): SimResponse {
  sim.requireAuth(req);
  const subject = sim.tokenFor(header(req, 'x-subject-token'));
  if (!subject) throw new HttpError(serviceError('identity', 404, 'Could not find token.'));
  return { status: 200, headers: { 'X-Subject-Token': subject.id }, body: { token: tokenBody(sim, subject, ['password']) } };
}

function tokenBody(sim: OpenStackSim, t: TokenInfo, methods: string[]): Record<string, unknown> {
  const domain = sim.state.domains.get(t.domainId);
  const project = sim.state.projects.get(t.projectId);
  const pdomain = project ? sim.state.domains.get(project.domainId) : undefined;
  return {
    methods,
    user: { domain: { id: t.domainId, name: domain?.name ?? '' }, id: t.userId, name: t.userName, password_expires_at: null },
    audit_ids: [randomBytes(16).toString('base64url').slice(0, 22)],
    expires_at: isoMicro(t.expiresAt),
    issued_at: isoMicro(t.issuedAt),
    project: { domain: { id: pdomain?.id ?? '', name: pdomain?.name ?? '' }, id: t.projectId, name: t.projectName },
    is_domain: false,
    roles: [
      { id: 'c2d0f6a5e8b34a1f9e7d6c5b4a3f2e1d', name: 'member' },
      { id: 'f1e2d3c4b5a6978877665544332211aa', name: 'reader' },
    ],
    catalog: catalog(sim, t),
  };
}

const SERVICES: { type: string; name: string; id: string; path: (t: TokenInfo) => string }[] = [
  { type: 'identity', name: 'keystone', id: '6b5c0e0f3d2a4b1c8e9f7a6d5c4b3a21', path: () => '/identity' },
  { type: 'compute', name: 'nova', id: '7c6d1f1a4e3b5c2d9f0a8b7e6d5c4b32', path: () => '/compute/v2.1' },
  { type: 'image', name: 'glance', id: '8d7e2a2b5f4c6d3e0a1b9c8f7e6d5c43', path: () => '/image' },
  { type: 'network', name: 'neutron', id: '9e8f3b3c6a5d7e4f1b2c0d9a8f7e6d54', path: () => '/network' },
];

function catalog(sim: OpenStackSim, t: TokenInfo): Record<string, unknown>[] {
  return SERVICES.map((s) => ({
    type: s.type,
    name: s.name,
    id: s.id,
    endpoints: (['public', 'internal', 'admin'] as const).map((iface, i) => ({
      id: `${s.id.slice(0, 30)}${i}${iface[0]}`,
      interface: iface,
      region: sim.region,
      region_id: sim.region,
      url: `${sim.base}${s.path(t)}`,
    })),
  }));
}
