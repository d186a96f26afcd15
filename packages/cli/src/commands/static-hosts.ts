// `nodepool static-host add|remove|list` (beyond Nodepool): static hosts added and removed at
// runtime, without editing nodepool.yaml — Cloudify Host-pool's add/delete hosts, in Nodepool's
// model. A runtime host belongs to a configured static provider and pool; it is kept in
// ZooKeeper (/nodepool/static-hosts/<provider>/<host>) and every launcher serving that provider
// registers it (after an alive check) like a configured host, and deregisters it when removed
// (nodes in use finish their job first). `list` shows configured and runtime hosts with their
// registered slots; `--os`/`--tag` filter like Host-pool's allocation filters.
//
// The store lives in @nodepool-ts/driver-static and is imported at run time, like the other
// plugged commands import their modules (no build-time dependency of the CLI on a driver).
import type { Config } from '@nodepool-ts/core/config';
import type { Node } from '@nodepool-ts/core/model';
import { pythonJson } from '@nodepool-ts/core/model';
import { getLogger } from '@nodepool-ts/core/log';
import { ZooKeeper } from '@nodepool-ts/core/zk';
import type { CliContext, CommandFn } from '../context.js';
import { CliError } from '../errors.js';
import type { CommandContext } from '../runtime.js';
import { formatTable, type Cell } from '../table.js';

const STATIC_MODULE: string = '@nodepool-ts/driver-static';

/** The runtime-host record of @nodepool-ts/driver-static (what this command reads of it). */
interface RuntimeHost {
  name: string;
  provider: string;
  pool: string;
  labels: string[];
  username: string;
  timeout: number;
  hostKey: string[];
  connectionPort: number;
  connectionType: string;
  maxParallelJobs: number;
  os: string | null;
  tags: string[];
  addedTime: number;
  addedBy: string | null;
}

interface RuntimeHostInput {
  provider: string;
  pool?: string | null;
  name: string;
  labels: string[];
  username?: string;
  timeout?: number;
  hostKey?: string[];
  connectionPort?: number;
  connectionType?: string;
  maxParallelJobs?: number;
  os?: string | null;
  tags?: string[];
  addedBy?: string | null;
}

interface StoreLike {
  add(config: Config, input: RuntimeHostInput): Promise<RuntimeHost>;
  remove(name: string, provider?: string | null): Promise<RuntimeHost>;
  list(provider?: string | null): Promise<RuntimeHost[]>;
}

interface StaticModule {
  StaticHostStore: new (zk: ZooKeeper) => StoreLike;
  StaticDriverError: new (...args: never[]) => Error & { code: string };
  staticHostRows(config: Config, runtime: readonly RuntimeHost[], nodes: readonly Node[],
    filter: { provider?: string | null; os?: string | null; tags?: readonly string[] }): HostRow[];
}

export const STATIC_HOST_HELP = `usage: nodepool static-host [-h] {list,add,remove} ...

Static hosts added or removed at runtime (kept in ZooKeeper; every launcher
serving the provider registers them after an alive check).

commands:
  list [--provider P] [--os OS] [--tag TAG ...]
                        configured and runtime static hosts with their
                        registered and ready slots
  add NAME --provider P [--pool POOL] --label L [--label L ...]
      [--username U] [--port N] [--connection-type ssh|winrm|network_cli]
      [--host-key "TYPE BASE64" ...] [--timeout S] [--max-parallel-jobs N]
      [--os OS] [--tag TAG ...]
                        add a host to a static pool (labels must be offered
                        by the pool; defaults as in nodepool.yaml)
  remove NAME [--provider P]
                        remove a runtime host; its free nodes are
                        deregistered, nodes in use finish their job first

options:
  -h, --help            show this help message and exit
  --json                print the data as JSON
`;

type Sub = 'list' | 'add' | 'remove' | 'help';

interface Parsed {
  sub: Sub;
  name: string | null;
  json: boolean;
  single: Map<string, string>;
  multi: Map<string, string[]>;
}

const SINGLE: Record<Sub, readonly string[]> = {
  help: [],
  list: ['--provider', '--os'],
  add: ['--provider', '--pool', '--username', '--port', '--connection-type', '--timeout', '--max-parallel-jobs', '--os'],
  remove: ['--provider'],
};
const MULTI: Record<Sub, readonly string[]> = {
  help: [],
  list: ['--tag'],
  add: ['--label', '--host-key', '--tag'],
  remove: [],
};

function usage(message: string): CliError {
  return new CliError('EFAILED', `${STATIC_HOST_HELP.split('\n\n')[0] ?? ''}\nnodepool static-host: error: ${message}`, 2);
}

function parse(argv: readonly string[]): Parsed {
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help') {
    return { sub: 'help', name: null, json: false, single: new Map(), multi: new Map() };
  }
  if (first !== 'list' && first !== 'add' && first !== 'remove') {
    throw usage(`argument command: invalid choice: '${first}' (choose from 'list', 'add', 'remove')`);
  }
  const sub: Sub = first;
  const out: Parsed = { sub, name: null, json: false, single: new Map(), multi: new Map() };
  const positionals: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] ?? '';
    if (arg === '-h' || arg === '--help') return { ...out, sub: 'help' };
    if (arg === '--json') {
      out.json = true;
      continue;
    }
    if (arg === '--') {
      positionals.push(...rest.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    let value: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    const isSingle = SINGLE[sub].includes(flag);
    const isMulti = MULTI[sub].includes(flag);
    if (!isSingle && !isMulti) throw usage(`unrecognized arguments: ${arg}`);
    if (value === undefined) {
      value = rest[i + 1];
      i++;
      if (value === undefined) throw usage(`argument ${flag}: expected one argument`);
    }
    if (isSingle) out.single.set(flag, value);
    else out.multi.set(flag, [...(out.multi.get(flag) ?? []), value]);
  }
  if (sub === 'list') {
    if (positionals.length > 0) throw usage(`unrecognized arguments: ${positionals.join(' ')}`);
  } else {
    if (positionals.length === 0) throw usage('the following arguments are required: name');
    if (positionals.length > 1) throw usage(`unrecognized arguments: ${positionals.slice(1).join(' ')}`);
    out.name = positionals[0] ?? null;
  }
  if (sub === 'add') {
    if (!out.single.has('--provider')) throw usage('the following arguments are required: --provider');
    if (!out.multi.has('--label')) throw usage('the following arguments are required: --label');
  }
  return out;
}

function intOption(p: Parsed, flag: string): number | undefined {
  const v = p.single.get(flag);
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) throw usage(`argument ${flag}: invalid int value: '${v}'`);
  return Number(v);
}

async function loadModule(): Promise<StaticModule> {
  let mod: Partial<StaticModule>;
  try {
    mod = (await import(STATIC_MODULE)) as Partial<StaticModule>;
  } catch (err) {
    throw new CliError('EUNAVAILABLE', `static hosts are not available in this build (${STATIC_MODULE}: ${(err as Error).message})`);
  }
  if (typeof mod.StaticHostStore !== 'function' || typeof mod.StaticDriverError !== 'function' || typeof mod.staticHostRows !== 'function') {
    throw new CliError('EUNAVAILABLE', `static hosts are not available in this build (${STATIC_MODULE} has no StaticHostStore)`);
  }
  return mod as StaticModule;
}

/** The CLI's shared ZooKeeper client when main() provides one, else our own (closed by `done`). */
async function zookeeper(ctx: CliContext): Promise<{ zk: ZooKeeper; done(): Promise<void> }> {
  const shared = (ctx as Partial<CommandContext>).zookeeper;
  if (typeof shared === 'function') return { zk: await shared.call(ctx), done: async () => undefined };
  const config = await ctx.loadConfig();
  if (config.zookeeperServers.length === 0) throw new CliError('ENOZK', `No zookeeper-servers configured in ${config.file}`);
  const zk = new ZooKeeper({
    servers: config.zookeeperServers, sessionTimeoutMs: config.zookeeperTimeoutMs, tls: config.zookeeperTls, connectTimeoutMs: 10_000,
    log: getLogger('nodepool.zk.ZooKeeper'),
  });
  try {
    await zk.connect();
  } catch (err) {
    await zk.close().catch(() => undefined);
    throw new CliError('EZKCONNECT', `Unable to connect to ZooKeeper: ${(err as Error).message}`);
  }
  return { zk, done: () => zk.close() };
}

/** The row of @nodepool-ts/driver-static's staticHostRows (shared with the web API). */
interface HostRow {
  name: string;
  provider: string;
  pool: string;
  labels: string[];
  username: string;
  port: number;
  connection_type: string;
  max_parallel_jobs: number;
  os: string | null;
  tags: string[];
  source: 'config' | 'runtime';
  registered: number;
  ready: number;
}

const COLUMNS = ['Name', 'Provider', 'Pool', 'Labels', 'Username', 'Port', 'Type', 'Parallel', 'OS', 'Tags', 'Source', 'Registered', 'Ready'];

function rowCells(r: HostRow): Cell[] {
  return [r.name, r.provider, r.pool, r.labels, r.username, r.port, r.connection_type, r.max_parallel_jobs,
    r.os, r.tags, r.source, r.registered, r.ready];
}

export const staticHostCommand: CommandFn = async (argv, ctx) => {
  const p = parse(argv);
  if (p.sub === 'help') {
    ctx.out(STATIC_HOST_HELP.trimEnd());
    return 0;
  }
  const json = p.json || ctx.json;
  const config = await ctx.loadConfig();
  const mod = await loadModule();
  const { zk, done } = await zookeeper(ctx);
  try {
    const store = new mod.StaticHostStore(zk);
    try {
      if (p.sub === 'list') {
        const provider = p.single.get('--provider') ?? null;
        const os = p.single.get('--os') ?? null;
        const tags = p.multi.get('--tag') ?? [];
        const rows = mod.staticHostRows(config, await store.list(provider), await zk.getNodes(), { provider, os, tags });
        if (json) ctx.out(pythonJson(rows));
        else ctx.out(formatTable(COLUMNS, rows.map(rowCells)));
        return 0;
      }
      if (p.sub === 'add') {
        const input: RuntimeHostInput = {
          provider: p.single.get('--provider') ?? '',
          pool: p.single.get('--pool') ?? null,
          name: p.name ?? '',
          labels: (p.multi.get('--label') ?? []).flatMap((l) => l.split(/[\s,]+/)).filter((l) => l !== ''),
          hostKey: p.multi.get('--host-key') ?? [],
          tags: (p.multi.get('--tag') ?? []).flatMap((t) => t.split(',')).filter((t) => t !== ''),
          os: p.single.get('--os') ?? null,
          addedBy: `nodepool static-host add (${process.env.USER ?? 'unknown'})`,
        };
        const username = p.single.get('--username');
        if (username !== undefined) input.username = username;
        const ct = p.single.get('--connection-type');
        if (ct !== undefined) input.connectionType = ct;
        const port = intOption(p, '--port');
        if (port !== undefined) input.connectionPort = port;
        const timeout = intOption(p, '--timeout');
        if (timeout !== undefined) input.timeout = timeout;
        const mpj = intOption(p, '--max-parallel-jobs');
        if (mpj !== undefined) input.maxParallelJobs = mpj;
        const host = await store.add(config, input);
        if (json) ctx.out(pythonJson(host));
        else ctx.out(`Added static host ${host.name} to provider ${host.provider} pool ${host.pool}`);
        return 0;
      }
      const removed = await store.remove(p.name ?? '', p.single.get('--provider') ?? null);
      if (json) ctx.out(pythonJson(removed));
      else ctx.out(`Removed static host ${removed.name} from provider ${removed.provider} pool ${removed.pool}`);
      return 0;
    } catch (err) {
      if (err instanceof mod.StaticDriverError) throw new CliError('EFAILED', err.message);
      throw err;
    }
  } finally {
    await done();
  }
};
