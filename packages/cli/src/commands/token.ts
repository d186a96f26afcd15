// `nodepool token create|list|revoke`: tokens for the launcher's lease API (beyond Nodepool).
// Tokens live hashed in the configured database (the same one the launchers use); the token
// itself is printed once, alone on stdout, so `TOKEN=$(nodepool token create --name ci)` works.
// The store is in @nodepool-ts/launcher, imported at run time like the drivers (see
// provider-manager.ts: a build-time dependency both ways would be a project-reference cycle).
import type { Config } from '@nodepool-ts/core/config';
import { pythonJson } from '@nodepool-ts/core/model';
import type { CliContext, CommandFn } from '../context.js';
import { CliError } from '../errors.js';
import { formatObjects } from '../table.js';

const LAUNCHER_MODULE: string = '@nodepool-ts/launcher';

interface TokenInfo {
  id: string;
  name: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  lastUsedAt: number | null;
  maxNodes: number | null;
  /** absent from a launcher build older than token scopes */
  scopes?: string[];
  state: 'active' | 'expired' | 'revoked';
}

interface TokenStoreLike {
  create(name: string, opts: { expiresAt?: number | null; maxNodes?: number | null; scopes?: string[] | null }): Promise<{ info: TokenInfo; token: string }>;
  list(): Promise<TokenInfo[]>;
  revoke(nameOrId: string): Promise<TokenInfo>;
}

interface TokenModule {
  openTokenStore(config: Config): Promise<{ tokens: TokenStoreLike; close(): Promise<void> }>;
  parseExpiry(text: string, now: number): number;
  TokenError: new (...args: never[]) => Error;
  /** the scopes a token may have (absent: a launcher build without scopes) */
  TOKEN_SCOPES?: readonly string[];
}

export const TOKEN_HELP = `usage: nodepool token [-h] {create,list,revoke} ...

Tokens for the launcher's web API (leases, static hosts). Stored hashed in the
database.

commands:
  create --name NAME [--expires WHEN] [--max-nodes N] [--scope SCOPE ...]
                        create a token and print it (once); WHEN is a duration
                        (30d, 12h, 45m, 3600) or an ISO date; N overrides how
                        many nodes the token may hold at once; SCOPE is what
                        it may change: leases (the default) or hosts (runtime
                        static hosts); repeat --scope for both
  list                  list tokens (never their secrets) with their scopes
  revoke NAME|ID        revoke a token

options:
  -h, --help            show this help message and exit
  --json                print the data as JSON
`;

async function loadModule(): Promise<TokenModule> {
  let mod: Partial<TokenModule>;
  try {
    mod = (await import(LAUNCHER_MODULE)) as Partial<TokenModule>;
  } catch (err) {
    throw new CliError('EUNAVAILABLE', `tokens are not available in this build (${LAUNCHER_MODULE}: ${(err as Error).message})`);
  }
  if (typeof mod.openTokenStore !== 'function' || typeof mod.parseExpiry !== 'function' || typeof mod.TokenError !== 'function') {
    throw new CliError('EUNAVAILABLE', `tokens are not available in this build (${LAUNCHER_MODULE} has no token store)`);
  }
  return mod as TokenModule;
}

function usage(message: string): CliError {
  return new CliError('EFAILED', `${message}\n${TOKEN_HELP.split('\n\n')[0] ?? ''}`, 2);
}

interface Parsed {
  sub: 'create' | 'list' | 'revoke' | 'help';
  name: string | null;
  expires: string | null;
  maxNodes: number | null;
  scopes: string[];
  target: string | null;
  json: boolean;
}

function parse(argv: string[]): Parsed {
  const out: Parsed = { sub: 'help', name: null, expires: null, maxNodes: null, scopes: [], target: null, json: false };
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, null];
    const value = (): string => {
      if (inline !== null) return inline;
      const v = argv[++i];
      if (v === undefined) throw usage(`token: error: argument ${flag}: expected one argument`);
      return v;
    };
    if (flag === '-h' || flag === '--help') return { ...out, sub: 'help' };
    else if (flag === '--json') out.json = true;
    else if (flag === '--name') out.name = value();
    else if (flag === '--expires') out.expires = value();
    else if (flag === '--scope') out.scopes.push(...value().split(',').map((v) => v.trim()).filter((v) => v !== ''));
    else if (flag === '--max-nodes') {
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw usage(`token: error: argument --max-nodes: invalid int value: '${v}'`);
      out.maxNodes = n;
    } else if (flag.startsWith('-')) throw usage(`token: error: unrecognized arguments: ${a}`);
    else rest.push(a);
  }
  const [sub, ...args] = rest;
  if (sub === undefined) return out;
  if (sub !== 'create' && sub !== 'list' && sub !== 'revoke') {
    throw usage(`token: error: argument command: invalid choice: '${sub}' (choose from 'create', 'list', 'revoke')`);
  }
  out.sub = sub;
  if (sub === 'create') {
    if (args.length > 0) throw usage(`token create: error: unrecognized arguments: ${args.join(' ')}`);
    if (out.name === null) throw usage('token create: error: the following arguments are required: --name');
  } else if (out.scopes.length > 0) {
    throw usage(`token ${sub}: error: unrecognized arguments: --scope (only for create)`);
  } else if (sub === 'revoke') {
    if (args.length !== 1) throw usage('token revoke: error: expected one token name or id');
    out.target = args[0] ?? null;
  } else if (args.length > 0) {
    throw usage(`token list: error: unrecognized arguments: ${args.join(' ')}`);
  }
  return out;
}

function when(t: number | null): string {
  return t === null ? 'never' : new Date(t * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

function tokenJson(t: TokenInfo): Record<string, unknown> {
  return {
    id: t.id, name: t.name, state: t.state, created_at: t.createdAt, expires_at: t.expiresAt,
    revoked_at: t.revokedAt, last_used_at: t.lastUsedAt, max_nodes: t.maxNodes, scopes: t.scopes ?? ['leases'],
  };
}

export const tokenCommand: CommandFn = async (argv, ctx: CliContext) => {
  const args = parse(argv);
  if (args.sub === 'help') {
    ctx.out(TOKEN_HELP.trimEnd());
    return argv.some((a) => a === '-h' || a === '--help') ? 0 : 1;
  }
  const json = args.json || ctx.json;
  const mod = await loadModule();
  if (args.scopes.length > 0) {
    const known = mod.TOKEN_SCOPES ?? [];
    const unknown = args.scopes.filter((s) => !known.includes(s));
    if (unknown.length > 0) {
      throw usage(`token create: error: argument --scope: invalid choice: '${unknown[0] ?? ''}' (choose from ${known.map((k) => `'${k}'`).join(', ')})`);
    }
  }
  const config = await ctx.loadConfig();
  let store: Awaited<ReturnType<TokenModule['openTokenStore']>>;
  try {
    store = await mod.openTokenStore(config);
  } catch (err) {
    throw new CliError('EFAILED', `cannot open the database: ${(err as Error).message}`);
  }
  try {
    if (args.sub === 'create') {
      let expiresAt: number | null = null;
      try {
        if (args.expires !== null) expiresAt = mod.parseExpiry(args.expires, ctx.now());
        const { info, token } = await store.tokens.create(args.name ?? '', {
          expiresAt, maxNodes: args.maxNodes, scopes: args.scopes.length > 0 ? args.scopes : null,
        });
        if (json) {
          ctx.out(pythonJson({ ...tokenJson(info), token }));
        } else {
          ctx.err(`Token ${info.name} (id ${info.id}) created; expires ${when(info.expiresAt)}; scopes ${(info.scopes ?? ['leases']).join(', ')}. `
            + 'It is shown only now: store it. Send it as "Authorization: Bearer <token>".');
          ctx.out(token);
        }
      } catch (err) {
        if (err instanceof mod.TokenError) throw new CliError('EFAILED', err.message);
        throw err;
      }
    } else if (args.sub === 'list') {
      const list = await store.tokens.list();
      if (json) {
        ctx.out(pythonJson(list.map(tokenJson)));
      } else {
        ctx.out(formatObjects([
          { key: 'id', title: 'ID' }, { key: 'name', title: 'Name' }, { key: 'state', title: 'State' },
          { key: 'created', title: 'Created' }, { key: 'expires', title: 'Expires' },
          { key: 'last_used', title: 'Last Used' }, { key: 'max_nodes', title: 'Max Nodes' }, { key: 'scopes', title: 'Scopes' },
        ], list.map((t) => ({
          id: t.id, name: t.name, state: t.state, created: when(t.createdAt), expires: when(t.expiresAt),
          last_used: t.lastUsedAt === null ? '' : when(t.lastUsedAt), max_nodes: t.maxNodes === null ? 'default' : t.maxNodes,
          scopes: (t.scopes ?? ['leases']).join(','),
        }))));
      }
    } else {
      try {
        const info = await store.tokens.revoke(args.target ?? '');
        if (json) ctx.out(pythonJson(tokenJson(info)));
        else ctx.out(`Token ${info.name} (id ${info.id}) revoked`);
      } catch (err) {
        if (err instanceof mod.TokenError) throw new CliError('EFAILED', err.message);
        throw err;
      }
    }
  } finally {
    await store.close();
  }
  return 0;
};
