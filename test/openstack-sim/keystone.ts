// Keystone v3: version discovery, password, token and application credential authentication
// with domains, project-scoped tokens with the service catalog, token validation and revocation,
// and a user's application credentials (create, list, show, delete).
import { randomBytes, randomUUID } from 'node:crypto';
import {
  HttpError, isoMicro, readJson, serviceError, unauthorized,
  type SimRequest, type SimResponse, type TokenInfo,
} from './http.js';
import type { SimAppCredential, SimProject, SimUser } from './model.js';
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
  const appCreds = /^\/v3\/users\/([^/]+)\/application_credentials(?:\/([^/]+))?$/.exec(path);
  if (appCreds) return applicationCredentials(sim, req, appCreds[1] ?? '', appCreds[2] ?? null);
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
  let appCred: SimAppCredential | undefined;
  if (methods.includes('application_credential')) {
    method = 'application_credential';
    const ac = obj(identity.application_credential);
    if (!ac) throw validation("'application_credential' is a required property.");
    const secret = str(ac.secret);
    if (secret === null) throw validation("'secret' is a required property.");
    const id = str(ac.id);
    if (id !== null) {
      appCred = sim.state.appCredentials.get(id);
    } else {
      const name = str(ac.name);
      if (name === null) throw validation('Expecting to find id or name in application_credential.');
      const u = obj(ac.user);
      if (!u) throw validation('Expecting to find user in application_credential.');
      const uid = str(u.id);
      let owner: SimUser | undefined;
      if (uid !== null) {
        owner = sim.state.users.get(uid);
      } else {
        const uname = str(u.name);
        const domain = findDomain(sim, obj(u.domain));
        if (uname === null || domain === null) throw validation('Expecting to find id, or name and domain, in user.');
        owner = [...sim.state.users.values()].find((x) => x.name === uname && x.domainId === domain);
      }
      appCred = owner ? [...sim.state.appCredentials.values()].find((c) => c.userId === owner.id && c.name === name) : undefined;
    }
    if (!appCred || appCred.secret !== secret || (appCred.expiresAt !== null && appCred.expiresAt.getTime() <= Date.now())) {
      throw new HttpError(unauthorized());
    }
    // the credential carries its project: it may not ask for another scope
    if (auth.scope !== undefined) {
      throw new HttpError(serviceError('identity', 401, 'Application credentials cannot request a scope.'));
    }
    user = sim.state.users.get(appCred.userId);
    if (!user || !user.projects.includes(appCred.projectId)) throw new HttpError(unauthorized());
  } else if (methods.includes('password')) {
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
  if (appCred) {
    project = sim.state.projects.get(appCred.projectId);
  } else if (projectRef) {
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
  let expiresAt = new Date(now.getTime() + sim.tokenTtlMs);
  // a token never outlives the application credential it was issued for (and then, as
  // Keystone's, its expires_at carries no time zone)
  let capped = false;
  if (appCred?.expiresAt && appCred.expiresAt < expiresAt) {
    expiresAt = appCred.expiresAt;
    capped = true;
  }
  const token: TokenInfo = {
    id: `gAAAAA${randomBytes(90).toString('base64url')}`,
    userId: user.id,
    userName: user.name,
    domainId: user.domainId,
    projectId: project.id,
    projectName: project.name,
    issuedAt: now,
    expiresAt,
    ...(appCred ? { appCredentialId: appCred.id } : {}),
    ...(capped ? { expiresNaive: true } : {}),
  };
  sim.tokens.set(token.id, token);
  return { status: 201, headers: { 'X-Subject-Token': token.id }, body: { token: tokenBody(sim, token, [method]) } };
}

function validateToken(sim: OpenStackSim, req: SimRequest): SimResponse {
  sim.requireAuth(req);
  const subject = sim.tokenFor(header(req, 'x-subject-token'));
  if (!subject) throw new HttpError(serviceError('identity', 404, 'Could not find token.'));
  const methods = [subject.appCredentialId ? 'application_credential' : 'password'];
  return { status: 200, headers: { 'X-Subject-Token': subject.id }, body: { token: tokenBody(sim, subject, methods) } };
}

function tokenBody(sim: OpenStackSim, t: TokenInfo, methods: string[]): Record<string, unknown> {
  const domain = sim.state.domains.get(t.domainId);
  const project = sim.state.projects.get(t.projectId);
  const pdomain = project ? sim.state.domains.get(project.domainId) : undefined;
  return {
    methods,
    user: { domain: { id: t.domainId, name: domain?.name ?? '' }, id: t.userId, name: t.userName, password_expires_at: null },
    audit_ids: [randomBytes(16).toString('base64url').slice(0, 22)],
    expires_at: t.expiresNaive ? t.expiresAt.toISOString().slice(0, 19) : isoMicro(t.expiresAt),
    issued_at: isoMicro(t.issuedAt),
    project: { domain: { id: pdomain?.id ?? '', name: pdomain?.name ?? '' }, id: t.projectId, name: t.projectName },
    is_domain: false,
    roles: [
      { id: 'c2d0f6a5e8b34a1f9e7d6c5b4a3f2e1d', name: 'member' },
      { id: 'f1e2d3c4b5a6978877665544332211aa', name: 'reader' },
    ],
    catalog: catalog(sim, t),
    ...(t.appCredentialId ? { application_credential: appCredentialRef(sim, t.appCredentialId) } : {}),
  };
}

function appCredentialRef(sim: OpenStackSim, id: string): Record<string, unknown> {
  const c = sim.state.appCredentials.get(id);
  return { id, name: c?.name ?? '', restricted: true };
}

function appCredentialJson(sim: OpenStackSim, c: SimAppCredential, secret: boolean): Record<string, unknown> {
  return {
    id: c.id, name: c.name, description: c.description, user_id: c.userId, project_id: c.projectId,
    expires_at: c.expiresAt ? isoMicro(c.expiresAt) : null, unrestricted: false, access_rules: [],
    roles: [{ id: 'c2d0f6a5e8b34a1f9e7d6c5b4a3f2e1d', name: 'member', domain_id: null }],
    links: { self: `${sim.base}/identity/v3/users/${c.userId}/application_credentials/${c.id}` },
    ...(secret ? { secret: c.secret } : {}),
  };
}

/**
 * Creates an application credential of `userId` on `projectId` (Keystone generates the secret
 * when none is given). Names are unique per user.
 */
export function createAppCredential(sim: OpenStackSim, userId: string, projectId: string,
  opts: { name: string; secret?: string; description?: string; expiresAt?: Date | null }): SimAppCredential {
  for (const c of sim.state.appCredentials.values()) {
    if (c.userId === userId && c.name === opts.name) {
      throw new HttpError(serviceError('identity', 409, 'Conflict occurred attempting to store application_credential - Duplicate entry.'));
    }
  }
  const c: SimAppCredential = {
    id: randomUUID().replace(/-/g, ''), name: opts.name, secret: opts.secret ?? randomBytes(48).toString('base64url'),
    userId, projectId, description: opts.description ?? '', expiresAt: opts.expiresAt ?? null,
  };
  sim.state.appCredentials.set(c.id, c);
  return c;
}

/** `/v3/users/{user_id}/application_credentials[/{id}]`: a user manages their own credentials. */
async function applicationCredentials(sim: OpenStackSim, req: SimRequest, userId: string, id: string | null): Promise<SimResponse> {
  const t = sim.requireAuth(req);
  if (t.userId !== userId) throw new HttpError(serviceError('identity', 403, 'You are not authorized to perform the requested action.'));
  if (t.appCredentialId) {
    // a restricted application credential cannot make others
    throw new HttpError(serviceError('identity', 403, 'Using method \'application_credential\' is not allowed for managing additional application credentials.'));
  }
  if (id === null && req.method === 'POST') {
    const ac = obj((await readJson(req)).application_credential);
    const name = str(ac?.name);
    if (!ac || name === null) throw validation("'name' is a required property.");
    const expires = str(ac.expires_at);
    const c = createAppCredential(sim, userId, t.projectId, {
      name, ...(str(ac.secret) !== null ? { secret: str(ac.secret) ?? '' } : {}), description: str(ac.description) ?? '',
      expiresAt: expires !== null ? new Date(expires) : null,
    });
    return { status: 201, body: { application_credential: appCredentialJson(sim, c, true) } };
  }
  const mine = [...sim.state.appCredentials.values()].filter((c) => c.userId === userId);
  if (id === null && req.method === 'GET') {
    const name = req.query.get('name');
    const list = mine.filter((c) => name === null || c.name === name);
    return { status: 200, body: { application_credentials: list.map((c) => appCredentialJson(sim, c, false)), links: {} } };
  }
  const c = mine.find((x) => x.id === id);
  if (!c) throw new HttpError(serviceError('identity', 404, `Could not find application credential: ${id ?? ''}.`));
  if (req.method === 'GET') return { status: 200, body: { application_credential: appCredentialJson(sim, c, false) } };
  if (req.method === 'DELETE') {
    sim.state.appCredentials.delete(c.id);
    // its tokens die with it
    for (const [tid, tok] of sim.tokens) if (tok.appCredentialId === c.id) sim.tokens.delete(tid);
    return { status: 204 };
  }
  return serviceError('identity', 405, 'The method is not allowed for the requested URL.');
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
