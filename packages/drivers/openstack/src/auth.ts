// What a clouds.yaml entry says about reaching Keystone: the token request (password or
// application credential) and how HTTPS is verified (`cacert`, `verify`, `insecure`). Both are
// worked out when a provider starts; a missing credential or an unusable CA bundle is a config
// error naming the cloud and the clouds.yaml file, never showing a secret.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { CloudConfig } from '@nodepool-ts/core/config';

export type AuthMethod = 'password' | 'application_credential';

/** A Keystone v3 token request made from a clouds.yaml entry. */
export interface KeystoneAuth {
  method: AuthMethod;
  /** the JSON body of `POST /v3/auth/tokens` */
  body: { auth: Record<string, unknown> };
  /** how messages name the credential, e.g. `user demo` or `application credential 1c6a…` */
  describe: string;
}

function rawAuth(cloud: CloudConfig): Record<string, unknown> {
  const a = cloud.raw.auth;
  return a !== null && typeof a === 'object' ? a as Record<string, unknown> : {};
}

/** A clouds.yaml scalar as text (unquoted ids and secrets come out of YAML as numbers). */
function text(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined;
}

/** `auth_type` as written (`v3applicationcredential`, `v3-application-credential`, ...) reduced to one spelling. */
function normalAuthType(v: unknown): string {
  return typeof v === 'string' ? v.toLowerCase().replace(/[-_\s]/g, '') : '';
}

const PASSWORD_TYPES = new Set(['', 'password', 'v3password']);
const APPCRED_TYPES = new Set(['v3applicationcredential', 'applicationcredential']);

/** `cloud X in /etc/openstack/clouds.yaml` */
export function cloudWhere(cloud: CloudConfig): string {
  return `cloud ${cloud.name}${cloud.file ? ` in ${cloud.file}` : ''}`;
}

/** The secret that authenticates this cloud (password or application credential secret), if any. */
export function authSecret(cloud: CloudConfig): string | null {
  const auth = rawAuth(cloud);
  return text(auth.application_credential_secret) ?? cloud.password ?? text(auth.password) ?? null;
}

/**
 * The token request of a clouds.yaml entry. `auth_type` unset, `password` or `v3password`:
 * password auth scoped to the project; `v3applicationcredential` (or `applicationcredential`):
 * an application credential by id, or by name with its user, and no scope (the credential
 * carries its project). Throws an Error naming the cloud, its file and the missing key.
 */
export function keystoneAuth(cloud: CloudConfig): KeystoneAuth {
  const auth = rawAuth(cloud);
  const where = cloudWhere(cloud);
  const type = normalAuthType(cloud.raw.auth_type ?? cloud.raw.auth_plugin);
  // os-client-config: `domain_name`/`domain_id` stand for both the user's and the project's domain
  const userDomain = (): Record<string, string> | null => {
    const id = text(auth.user_domain_id) ?? text(auth.domain_id);
    if (id) return { id };
    const name = cloud.userDomainName ?? text(auth.user_domain_name) ?? text(auth.domain_name);
    return name ? { name } : null;
  };
  /** `{id}` or `{name, domain}` of the user; null when clouds.yaml names none */
  const user = (keyFor: string): Record<string, unknown> | null => {
    const id = text(auth.user_id);
    if (id) return { id };
    const name = cloud.username ?? text(auth.username);
    if (!name) return null;
    const domain = userDomain();
    if (!domain) {
      throw new Error(`${where}: auth.username ${name} needs its domain (auth.user_domain_name or auth.user_domain_id) for ${keyFor}`);
    }
    return { name, domain };
  };

  if (APPCRED_TYPES.has(type)) {
    const secret = text(auth.application_credential_secret);
    const id = text(auth.application_credential_id);
    const name = text(auth.application_credential_name);
    if (!id && !name) {
      throw new Error(`${where}: auth_type ${String(cloud.raw.auth_type)} needs auth.application_credential_id `
        + '(or auth.application_credential_name with auth.username or auth.user_id)');
    }
    if (!secret) throw new Error(`${where}: auth_type ${String(cloud.raw.auth_type)} needs auth.application_credential_secret`);
    const credential: Record<string, unknown> = { secret };
    let describe: string;
    if (id) {
      credential.id = id;
      describe = `application credential ${id}`;
    } else {
      const owner = user('an application credential given by name');
      if (!owner) {
        throw new Error(`${where}: auth.application_credential_name ${name} needs its user (auth.username with `
          + 'auth.user_domain_name/user_domain_id, or auth.user_id), or give auth.application_credential_id');
      }
      credential.name = name;
      credential.user = owner;
      describe = `application credential ${name} of user ${String(owner.id ?? owner.name)}`;
    }
    return {
      method: 'application_credential',
      body: { auth: { identity: { methods: ['application_credential'], application_credential: credential } } },
      describe,
    };
  }

  if (!PASSWORD_TYPES.has(type)) {
    throw new Error(`${where}: auth_type ${String(cloud.raw.auth_type ?? cloud.raw.auth_plugin)} is not supported `
      + '(password, v3password, v3applicationcredential)');
  }
  const password = cloud.password ?? text(auth.password);
  if (password === undefined) throw new Error(`${where}: auth.password is not set`);
  const owner = user('password authentication');
  if (!owner) throw new Error(`${where}: auth.username (or auth.user_id) is not set`);
  const body: { auth: Record<string, unknown> } = {
    auth: { identity: { methods: ['password'], password: { user: { ...owner, password } } } },
  };
  const projectId = cloud.projectId ?? text(auth.project_id);
  const projectName = cloud.projectName ?? text(auth.project_name);
  if (projectId) {
    body.auth.scope = { project: { id: projectId } };
  } else if (projectName) {
    const id = text(auth.project_domain_id) ?? text(auth.domain_id);
    const name = cloud.projectDomainName ?? text(auth.project_domain_name) ?? text(auth.domain_name);
    const domain = id ? { id } : name ? { name } : null;
    if (!domain) {
      throw new Error(`${where}: auth.project_name ${projectName} needs its domain (auth.project_domain_name or auth.project_domain_id)`);
    }
    body.auth.scope = { project: { name: projectName, domain } };
  }
  // neither: Keystone scopes the token to the user's default project, if it has one
  return { method: 'password', body, describe: `user ${String(owner.id ?? owner.name)}` };
}

/** How HTTPS to this cloud is verified. */
export interface CloudTls {
  /** false: certificates are not checked at all (`verify: false` or `insecure: true`) */
  verify: boolean;
  /** PEM text of the CA bundle to trust instead of the system's (clouds.yaml `cacert`) */
  ca: string | null;
  /** the absolute path of `cacert`, when given */
  cacertFile: string | null;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * `verify`, `insecure` and `cacert` of a clouds.yaml entry. `cacert` is read now: a path that
 * cannot be read, or a file without a PEM certificate that parses, is an Error naming the cloud,
 * the key and the file. A relative path is taken from the directory of clouds.yaml, `~/` from
 * the home directory. With `verify: false` the bundle is neither read nor used (as openstacksdk).
 */
export function cloudTls(cloud: CloudConfig): CloudTls {
  const verify = cloud.raw.verify !== false && cloud.raw.insecure !== true;
  const raw = cloud.raw.cacert;
  if (raw === undefined || raw === null || raw === '') return { verify, ca: null, cacertFile: null };
  const where = cloudWhere(cloud);
  if (typeof raw !== 'string') throw new Error(`${where}: cacert: expected the path of a PEM CA bundle`);
  const expanded = raw === '~' || raw.startsWith('~/') ? homedir() + raw.slice(1) : raw;
  const file = resolve(cloud.file ? dirname(cloud.file) : '.', expanded);
  if (!verify) return { verify, ca: null, cacertFile: file };
  let content: string;
  try {
    content = readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`${where}: cacert: cannot read ${file}: ${e.code ?? e.message}`);
  }
  const blocks = content.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new Error(`${where}: cacert: ${file} is not a PEM CA bundle (no BEGIN CERTIFICATE block)`);
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new Error(`${where}: cacert: certificate ${i + 1} of ${file} is not a valid PEM certificate: ${(err as Error).message}`);
    }
  });
  return { verify, ca: `${blocks.join('\n')}\n`, cacertFile: file };
}
