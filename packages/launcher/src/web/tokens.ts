// API tokens: `np_<id>_<secret>`. The id is public (it names the row, `token list` shows it);
// the secret is 32 random bytes shown once at creation and stored only as its SHA-256. A
// high-entropy secret needs no slow hash: nobody can guess one to test against the digest.
// Verification compares digests with timingSafeEqual, so timing reveals nothing about a secret.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Knex } from 'knex';
import type { Config } from '@nodepool-ts/core/config';
import { DEFAULT_SCOPES_JSON, openWebDatabase } from './db.js';

export const TOKEN_PREFIX = 'np_';
const TOKEN_RE = /^np_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$/;

export type TokenState = 'active' | 'expired' | 'revoked';

/**
 * What a token may change: `leases` the lease endpoints, `hosts` the runtime static hosts.
 * Reading needs no token at all.
 */
export const TOKEN_SCOPES = ['leases', 'hosts'] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];
/** what a token gets when no scope is named (and what tokens from before scopes have) */
export const DEFAULT_TOKEN_SCOPES: readonly TokenScope[] = ['leases'];

export function isTokenScope(s: string): s is TokenScope {
  return (TOKEN_SCOPES as readonly string[]).includes(s);
}

export interface TokenInfo {
  id: string;
  name: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  lastUsedAt: number | null;
  maxNodes: number | null;
  /** in TOKEN_SCOPES order */
  scopes: TokenScope[];
  state: TokenState;
}

export interface CreatedToken {
  info: TokenInfo;
  /** the only time the full token exists outside the client */
  token: string;
}

export type TokenCheck =
  | { ok: true; token: TokenInfo }
  | { ok: false; reason: 'invalid' | 'revoked' | 'expired' };

export class TokenError extends Error {
  constructor(readonly code: 'ETOKENNAME' | 'ETOKENEXISTS' | 'ETOKENNOTFOUND' | 'ETOKENEXPIRES' | 'ETOKENSCOPE', message: string) {
    super(message);
    this.name = 'TokenError';
  }
}

interface TokenRow {
  id: string;
  name: string;
  hash: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
  max_nodes: number | null;
  scopes: TokenScope[];
}

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

// compared against when the id is unknown, so a miss costs the same as a wrong secret
const DUMMY = digest('nodepool-ts: no such token');

function num(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/** Sorted into TOKEN_SCOPES order, duplicates dropped. */
function normalScopes(scopes: readonly TokenScope[]): TokenScope[] {
  return TOKEN_SCOPES.filter((s) => scopes.includes(s));
}

/** The stored JSON array; names this version does not know are ignored, garbage is the default. */
function parseScopes(v: unknown): TokenScope[] {
  let list: unknown = null;
  try {
    list = JSON.parse(typeof v === 'string' ? v : DEFAULT_SCOPES_JSON) as unknown;
  } catch {
    list = null;
  }
  if (!Array.isArray(list)) return [...DEFAULT_TOKEN_SCOPES];
  return normalScopes(list.filter((x): x is TokenScope => typeof x === 'string' && isTokenScope(x)));
}

function stateOf(row: TokenRow, now: number): TokenState {
  if (row.revoked_at !== null) return 'revoked';
  if (row.expires_at !== null && row.expires_at <= now) return 'expired';
  return 'active';
}

function infoOf(raw: Record<string, unknown>, now: number): TokenInfo {
  const row: TokenRow = {
    id: String(raw.id),
    name: String(raw.name),
    hash: String(raw.hash),
    created_at: num(raw.created_at) ?? 0,
    expires_at: num(raw.expires_at),
    revoked_at: num(raw.revoked_at),
    last_used_at: num(raw.last_used_at),
    max_nodes: num(raw.max_nodes),
    scopes: parseScopes(raw.scopes),
  };
  return {
    id: row.id,
    name: row.name,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    maxNodes: row.max_nodes,
    scopes: row.scopes,
    state: stateOf(row, now),
  };
}

/**
 * `30d`, `12h`, `45m`, `90s`, `2w`, a bare number of seconds, or an ISO date/time; returns the
 * Unix time it designates. Throws TokenError for anything else or a time in the past.
 */
export function parseExpiry(text: string, now: number): number {
  const t = text.trim();
  const m = /^(\d+(?:\.\d+)?)\s*([smhdw]?)$/i.exec(t);
  if (m) {
    const unit: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
    const secs = Number(m[1]) * (unit[(m[2] ?? '').toLowerCase()] ?? 1);
    if (!(secs > 0)) throw new TokenError('ETOKENEXPIRES', `--expires ${t}: must be in the future`);
    return now + secs;
  }
  const ms = Date.parse(t);
  if (Number.isNaN(ms)) {
    throw new TokenError('ETOKENEXPIRES', `--expires ${t}: expected a duration (30d, 12h, 45m, 3600) or an ISO date`);
  }
  if (ms / 1000 <= now) throw new TokenError('ETOKENEXPIRES', `--expires ${t}: that time has passed`);
  return ms / 1000;
}

export class TokenStore {
  constructor(private readonly knex: Knex, private readonly clock: () => number = () => Date.now() / 1000) {}

  async create(name: string, opts: { expiresAt?: number | null; maxNodes?: number | null; scopes?: readonly string[] | null } = {}): Promise<CreatedToken> {
    if (!NAME_RE.test(name)) {
      throw new TokenError('ETOKENNAME', `token name ${JSON.stringify(name)}: use 1-100 letters, digits, '.', '_', '@' or '-'`);
    }
    const asked = opts.scopes && opts.scopes.length > 0 ? opts.scopes : DEFAULT_TOKEN_SCOPES;
    const unknown = asked.filter((s) => !isTokenScope(s));
    if (unknown.length > 0) {
      throw new TokenError('ETOKENSCOPE', `unknown scope ${unknown.map((s) => JSON.stringify(s)).join(', ')} (scopes: ${TOKEN_SCOPES.join(', ')})`);
    }
    const scopes = normalScopes(asked.filter(isTokenScope));
    const existing = await this.knex('tokens').where({ name }).first('id');
    if (existing) throw new TokenError('ETOKENEXISTS', `a token named ${name} already exists (names stay taken after a revoke); pick another name`);
    const id = randomBytes(6).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const now = this.clock();
    const row = {
      id, name, hash: digest(secret).toString('hex'), created_at: now,
      expires_at: opts.expiresAt ?? null, revoked_at: null, last_used_at: null, max_nodes: opts.maxNodes ?? null,
      scopes: JSON.stringify(scopes),
    };
    try {
      await this.knex('tokens').insert(row);
    } catch (err) {
      if (await this.knex('tokens').where({ name }).first('id')) {
        throw new TokenError('ETOKENEXISTS', `a token named ${name} already exists (names stay taken after a revoke); pick another name`);
      }
      throw err;
    }
    return { info: infoOf(row, now), token: `${TOKEN_PREFIX}${id}_${secret}` };
  }

  async list(): Promise<TokenInfo[]> {
    const now = this.clock();
    const rows: Record<string, unknown>[] = await this.knex('tokens').select('*')
      .orderBy([{ column: 'created_at' }, { column: 'name' }]);
    return rows.map((r) => infoOf(r, now));
  }

  /** Revoke by name or id. Returns the token as it is now (already revoked tokens stay so). */
  async revoke(nameOrId: string): Promise<TokenInfo> {
    const row = await this.find(nameOrId);
    if (!row) throw new TokenError('ETOKENNOTFOUND', `no token named ${nameOrId}`);
    const now = this.clock();
    const id = String(row.id);
    await this.knex('tokens').where({ id }).whereNull('revoked_at').update({ revoked_at: now });
    const again = await this.find(id);
    return infoOf(again ?? row, now);
  }

  async get(nameOrId: string): Promise<TokenInfo | null> {
    const row = await this.find(nameOrId);
    return row ? infoOf(row, this.clock()) : null;
  }

  private async find(nameOrId: string): Promise<Record<string, unknown> | undefined> {
    return this.knex('tokens').where({ name: nameOrId }).orWhere({ id: nameOrId }).first('*') as Promise<Record<string, unknown> | undefined>;
  }

  /** Check a presented token. Never logs or returns the secret. */
  async verify(presented: string): Promise<TokenCheck> {
    const m = TOKEN_RE.exec(presented);
    const secret = m?.[2] ?? presented;
    const given = digest(secret);
    const raw = m?.[1] !== undefined
      ? await this.knex('tokens').where({ id: m[1] }).first('*') as Record<string, unknown> | undefined
      : undefined;
    const stored = raw ? Buffer.from(String(raw.hash), 'hex') : DUMMY;
    const equal = stored.length === given.length && timingSafeEqual(stored, given);
    if (!raw || !m || !equal) return { ok: false, reason: 'invalid' };
    const info = infoOf(raw, this.clock());
    if (info.state === 'revoked') return { ok: false, reason: 'revoked' };
    if (info.state === 'expired') return { ok: false, reason: 'expired' };
    return { ok: true, token: info };
  }

  async touch(id: string): Promise<void> {
    await this.knex('tokens').where({ id }).update({ last_used_at: this.clock() });
  }
}

/** For `nodepool token ...`: the configured database with our tables, and the store over it. */
export async function openTokenStore(config: Pick<Config, 'databaseUri' | 'stateDir'>): Promise<{ tokens: TokenStore; close(): Promise<void> }> {
  const db = await openWebDatabase(config);
  return { tokens: new TokenStore(db.knex), close: () => db.close() };
}
