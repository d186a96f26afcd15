// ready-script (Nodepool's pre-3.0 label option, seed 003): once a node is up, run a script on it
// over SSH as the node's user with the launcher's `private-key`; the node is handed out only if
// the script exits 0. Usable by every driver whose nodes are reachable over SSH.
//
// The script is a LOCAL file (absolute, or relative to `script-dir`, else to the config file's
// directory). It is copied to a private temp dir on the node, run there with the node's hostname
// as $1 and NODEPOOL_* variables, then removed. Waits are bounded (connect, whole run) and the
// output kept is capped (head and tail) however much the script prints.
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { Client, type ClientChannel } from 'ssh2';
import type { Config } from '@nodepool-ts/core/config';
import type { Node } from '@nodepool-ts/core/model';
import { connectTcp, hostKeyAlgorithms, hostKeyType, keyFromBlob, normalizeHostKey, SSH_CONNECTION_TYPES } from '@nodepool-ts/core/ssh';
import { StaticDriverError } from './errors.js';

export const DEFAULT_READY_SCRIPT_TIMEOUT_MS = 600_000;
export const DEFAULT_OUTPUT_LIMIT = 64 * 1024;
const MAX_SCRIPT_BYTES = 4 * 1024 * 1024;
const CLEANUP_TIMEOUT_MS = 5_000;

export interface ScriptTarget {
  /** address or name to connect to */
  host: string;
  port: number;
  username: string;
  /** keys the host is known by; when non-empty the server must present one of them */
  hostKeys: readonly string[];
}

export interface RunScriptOptions {
  /** local path of the script */
  script: string;
  /** private key contents (OpenSSH or PEM) */
  privateKey: string | Buffer;
  args?: readonly string[];
  env?: Readonly<Record<string, string>>;
  /** bound on the whole run, connect included (default 600 s) */
  timeoutMs?: number;
  /** bound on TCP connect + SSH login (default min(30 s, timeoutMs)) */
  connectTimeoutMs?: number;
  /** bytes of output kept: the first quarter and the last three quarters (default 64 KiB) */
  outputLimit?: number;
  signal?: AbortSignal;
}

export interface ScriptResult {
  ok: boolean;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** stdout and stderr interleaved, capped (see `truncated`) */
  output: string;
  /** bytes the script printed in total */
  outputBytes: number;
  truncated: boolean;
  durationMs: number;
  /** why the script could not run or finish (null when it ran to an exit status) */
  error: string | null;
}

export interface ReadyScriptResult extends ScriptResult {
  /** resolved local path, or null when the label has no ready-script */
  script: string | null;
  label: string;
}

/** Keeps the first and the last bytes of a stream of any length. */
class OutputCap {
  private head: Buffer[] = [];
  private headLen = 0;
  private tail: Buffer = Buffer.alloc(0);
  total = 0;

  constructor(private readonly headLimit: number, private readonly tailLimit: number) {}

  push(chunk: Buffer): void {
    this.total += chunk.length;
    let rest = chunk;
    if (this.headLen < this.headLimit) {
      const take = rest.subarray(0, this.headLimit - this.headLen);
      this.head.push(take);
      this.headLen += take.length;
      rest = rest.subarray(take.length);
    }
    if (rest.length === 0) return;
    const joined = this.tail.length === 0 ? rest : Buffer.concat([this.tail, rest]);
    this.tail = joined.length > this.tailLimit ? Buffer.from(joined.subarray(joined.length - this.tailLimit)) : joined;
  }

  get truncated(): boolean {
    return this.total > this.headLen + this.tail.length;
  }

  text(): string {
    const head = Buffer.concat(this.head).toString('utf8');
    if (!this.truncated) return head + this.tail.toString('utf8');
    const omitted = this.total - this.headLen - this.tail.length;
    return `${head}\n[... ${omitted} bytes of output omitted ...]\n${this.tail.toString('utf8')}`;
  }
}

/** POSIX shell single-quoting. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

interface Session {
  client: Client;
  close(): void;
}

/** TCP + SSH login as `target.username` with the private key; verified host key if known. */
function login(target: ScriptTarget, privateKey: string | Buffer, timeoutMs: number, signal?: AbortSignal): Promise<Session> {
  const label = `${target.username}@${target.host}:${target.port}`;
  const deadline = Date.now() + timeoutMs;
  const known = target.hostKeys.map(normalizeHostKey);
  return connectTcp(target.host, target.port, timeoutMs, signal, label).then((sock) => new Promise<Session>((resolve, reject) => {
    const client = new Client();
    let settled = false;
    let presented: string | null = null;
    const close = (): void => {
      client.on('error', () => undefined);
      client.end();
      sock.destroy();
    };
    const finish = (err: StaticDriverError | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) {
        close();
        reject(err);
      } else {
        resolve({ client, close });
      }
    };
    const onAbort = (): void => finish(new StaticDriverError('EABORTED', `${label}: cancelled`));
    const timer = setTimeout(() => finish(new StaticDriverError('EKEYSCAN',
      `${label}: SSH login timed out after ${timeoutMs} ms`)), Math.max(0, deadline - Date.now()));
    signal?.addEventListener('abort', onAbort, { once: true });
    client.on('ready', () => finish(null));
    client.on('error', (err: Error) => {
      const mismatch = presented !== null && known.length > 0 && !known.includes(presented);
      finish(new StaticDriverError(mismatch ? 'EHOSTKEY' : 'EKEYSCAN', mismatch
        ? `${label}: host key ${hostKeyType(presented ?? '')} is not among the node's known host keys`
        : `${label}: SSH login failed (${err.message})`));
    });
    client.on('close', () => finish(new StaticDriverError('EKEYSCAN', `${label}: connection closed during SSH login`)));
    const types = [...new Set(known.map(hostKeyType))];
    const algos = types.flatMap(hostKeyAlgorithms);
    try {
      client.connect({
        sock,
        username: target.username,
        privateKey,
        readyTimeout: 0,
        tryKeyboard: false,
        hostVerifier: (blob: Buffer) => {
          presented = keyFromBlob(blob);
          return known.length === 0 || known.includes(presented);
        },
        ...(algos.length > 0 ? { algorithms: { serverHostKey: algos } } : {}),
      });
    } catch (err) {
      finish(new StaticDriverError('EKEYSCAN', `${label}: ${(err as Error).message}`));
    }
  }));
}

interface ExecResult {
  exitCode: number | null;
  signal: string | null;
}

/** Run one command; resolves when the channel closes. `channelOut` lets the caller kill it. */
function exec(client: Client, command: string, opts: {
  stdin?: Buffer; onOutput: (chunk: Buffer) => void; channelOut?: (ch: ClientChannel) => void;
}): Promise<ExecResult> {
  return new Promise<ExecResult>((resolve, reject) => {
    client.exec(command, (err, channel) => {
      if (err) {
        reject(new StaticDriverError('ESCRIPT', `could not start a remote command: ${err.message}`));
        return;
      }
      opts.channelOut?.(channel);
      const result: ExecResult = { exitCode: null, signal: null };
      channel.on('exit', (code: number | null, sig?: string) => {
        result.exitCode = typeof code === 'number' ? code : null;
        result.signal = sig ?? null;
      });
      channel.on('data', (chunk: Buffer) => opts.onOutput(chunk));
      channel.stderr.on('data', (chunk: Buffer) => opts.onOutput(chunk));
      channel.on('close', () => resolve(result));
      channel.end(opts.stdin ?? Buffer.alloc(0));
    });
  });
}

function failed(started: number, error: string, out?: OutputCap, timedOut = false): ScriptResult {
  return {
    ok: false, exitCode: null, signal: null, timedOut,
    output: out?.text() ?? '', outputBytes: out?.total ?? 0, truncated: out?.truncated ?? false,
    durationMs: Date.now() - started, error,
  };
}

/** Copy `opts.script` to the target, run it, remove it. Never throws: failures are results. */
export async function runScriptOverSsh(target: ScriptTarget, opts: RunScriptOptions): Promise<ScriptResult> {
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? DEFAULT_READY_SCRIPT_TIMEOUT_MS;
  const limit = Math.max(1024, opts.outputLimit ?? DEFAULT_OUTPUT_LIMIT);
  const out = new OutputCap(Math.floor(limit / 4), limit - Math.floor(limit / 4));
  let body: Buffer;
  try {
    body = await readFile(opts.script);
  } catch (err) {
    return failed(started, `cannot read ready-script ${opts.script}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (body.length > MAX_SCRIPT_BYTES) {
    return failed(started, `ready-script ${opts.script} is larger than ${MAX_SCRIPT_BYTES} bytes`);
  }
  for (const name of Object.keys(opts.env ?? {})) {
    if (!ENV_NAME.test(name)) return failed(started, `invalid environment variable name ${JSON.stringify(name)}`);
  }

  const run = new AbortController();
  const onOuterAbort = (): void => run.abort();
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    run.abort();
  }, timeoutMs);

  let session: Session | null = null;
  let dir: string | null = null;
  let channel: ClientChannel | null = null;
  try {
    session = await login(target, opts.privateKey, Math.min(opts.connectTimeoutMs ?? 30_000, timeoutMs), run.signal);
    const client = session.client;
    const aborted = new Promise<never>((_, reject) => {
      const fire = (): void => reject(new StaticDriverError('EABORTED', timedOut ? 'timed out' : 'cancelled'));
      if (run.signal.aborted) fire();
      else run.signal.addEventListener('abort', fire, { once: true });
    });
    aborted.catch(() => undefined);

    // 1. upload into a private temp dir
    const upload = new OutputCap(4096, 4096);
    const up = await Promise.race([aborted, exec(client,
      'umask 077 && d=$(mktemp -d "${TMPDIR:-/tmp}/nodepool-ready.XXXXXX") && cat > "$d/script" && chmod 700 "$d/script" && printf "%s\\n" "$d"',
      { stdin: body, onOutput: (c) => upload.push(c) })]);
    const printed = upload.text().trim().split('\n').pop() ?? '';
    if (up.exitCode !== 0 || !printed.startsWith('/')) {
      return failed(started, `could not copy the ready-script to the node (exit ${up.exitCode ?? up.signal ?? 'unknown'}): ${upload.text().trim()}`);
    }
    dir = printed;

    // 2. run it; `exec` keeps the shell's pid, which sshd made a session (process group) leader,
    // so a timeout can kill the script with everything it started.
    const env = Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${shellQuote(v)}`).join(' ');
    const args = (opts.args ?? []).map(shellQuote).join(' ');
    const d = shellQuote(dir);
    const cmd = `cd "$HOME" 2>/dev/null; echo $$ > ${d}/pid && exec env ${env} ${d}/script ${args}`;
    const res = await Promise.race([aborted, exec(client, cmd, { onOutput: (c) => out.push(c), channelOut: (ch) => { channel = ch; } })]);
    return {
      ok: res.exitCode === 0,
      exitCode: res.exitCode,
      signal: res.signal,
      timedOut: false,
      output: out.text(),
      outputBytes: out.total,
      truncated: out.truncated,
      durationMs: Date.now() - started,
      error: res.exitCode === null ? `ready-script ended without an exit status${res.signal ? ` (signal ${res.signal})` : ''}` : null,
    };
  } catch (err) {
    if (timedOut) return failed(started, `ready-script timed out after ${timeoutMs} ms`, out, true);
    if (err instanceof StaticDriverError) return failed(started, err.message, out);
    return failed(started, (err as Error).message, out);
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onOuterAbort);
    const ch = channel as ClientChannel | null;
    if (ch !== null && run.signal.aborted) {
      try {
        ch.signal('KILL');
        ch.close();
      } catch {
        // the channel may already be gone
      }
    }
    if (session !== null) {
      if (dir !== null) await cleanupRemote(session.client, dir, run.signal.aborted);
      session.close();
    }
  }
}

/** Remove the temp dir; after a timeout also kill the script's process group. Bounded. */
async function cleanupRemote(client: Client, dir: string, kill: boolean): Promise<void> {
  const d = shellQuote(dir);
  const killCmd = kill ? `[ -f ${d}/pid ] && kill -KILL -- -"$(cat ${d}/pid)" 2>/dev/null; ` : '';
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    exec(client, `${killCmd}rm -rf ${d}`, { onOutput: () => undefined }).catch(() => undefined),
    new Promise<void>((r) => { timer = setTimeout(r, CLEANUP_TIMEOUT_MS); }),
  ]);
  clearTimeout(timer);
}

// ------------------------------------------------------------------ config glue

/** The label's ready-script as a local path, or null when it has none. */
export function labelReadyScript(config: Config, label: string): string | null {
  const script = config.labels.get(label)?.readyScript ?? null;
  if (script === null || script === '') return null;
  return resolveScriptPath(config, script);
}

export function resolveScriptPath(config: Pick<Config, 'scriptDir' | 'file'>, script: string): string {
  if (isAbsolute(script)) return script;
  return join(config.scriptDir ?? dirname(config.file), script);
}

/** NODEPOOL_READY_SCRIPT_TIMEOUT (seconds) overrides the default bound of a ready-script run. */
export function readyScriptTimeoutMs(): number {
  const env = Number(process.env.NODEPOOL_READY_SCRIPT_TIMEOUT);
  return Number.isFinite(env) && env > 0 ? env * 1000 : DEFAULT_READY_SCRIPT_TIMEOUT_MS;
}

const keyCache = new Map<string, { at: number; key: Buffer }>();

async function readPrivateKey(path: string): Promise<Buffer> {
  const cached = keyCache.get(path);
  if (cached && Date.now() - cached.at < 10_000) return cached.key;
  const key = await readFile(path);
  keyCache.set(path, { at: Date.now(), key });
  return key;
}

export interface ReadyScriptOptions {
  /**
   * A script set closer to the node than its label (e.g. a provider image's `ready-script`,
   * which the seed-era config allowed); relative to script-dir like the label's. null = none.
   */
  script?: string | null;
  timeoutMs?: number;
  outputLimit?: number;
  signal?: AbortSignal;
}

/**
 * Run the ready-script of `label` on `node` (connect to interface_ip, else hostname). ok with
 * `script: null` when the label has none. Never throws.
 */
export async function runReadyScript(node: Node, label: string, config: Config,
  opts: ReadyScriptOptions = {}): Promise<ReadyScriptResult> {
  const script = opts.script !== undefined
    ? (opts.script === null || opts.script === '' ? null : resolveScriptPath(config, opts.script))
    : labelReadyScript(config, label);
  const none = { output: '', outputBytes: 0, truncated: false, durationMs: 0, exitCode: null, signal: null, timedOut: false };
  if (script === null) return { ...none, ok: true, error: null, script: null, label };
  const bad = (error: string): ReadyScriptResult => ({ ...none, ok: false, error, script, label });
  if (node.connection_type !== null && !SSH_CONNECTION_TYPES.has(node.connection_type)) {
    return bad(`ready-script ${script} needs an ssh connection; node ${node.id ?? ''} uses ${node.connection_type}`);
  }
  const host = node.interface_ip ?? node.hostname;
  if (host === null || host === '') return bad(`node ${node.id ?? ''} has no address to run ready-script ${script} on`);
  if (config.privateKey === null) {
    return bad(`ready-script ${script} of label ${label} needs \`private-key\` in ${config.file}`);
  }
  let privateKey: Buffer;
  try {
    privateKey = await readPrivateKey(config.privateKey);
  } catch (err) {
    return bad(`cannot read private-key ${config.privateKey}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const env: Record<string, string> = {
    NODEPOOL_NODE_ID: node.id ?? '',
    NODEPOOL_HOSTNAME: node.hostname ?? host,
    NODEPOOL_LABEL: label,
    NODEPOOL_PROVIDER: node.provider ?? '',
    NODEPOOL_POOL: node.pool ?? '',
    NODEPOOL_INTERFACE_IP: host,
  };
  const res = await runScriptOverSsh(
    {
      host,
      port: typeof node.connection_port === 'number' ? node.connection_port : 22,
      username: node.username ?? 'zuul',
      hostKeys: node.host_keys,
    },
    {
      script,
      privateKey,
      args: [node.hostname ?? host],
      env,
      timeoutMs: opts.timeoutMs ?? readyScriptTimeoutMs(),
      ...(opts.outputLimit !== undefined ? { outputLimit: opts.outputLimit } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    },
  );
  return { ...res, script, label };
}

/** One line for logs and the node history: what happened, without the output. */
export function describeScriptResult(res: ScriptResult): string {
  const secs = (res.durationMs / 1000).toFixed(1);
  if (res.timedOut) return `timed out after ${secs} s`;
  if (res.error !== null && res.exitCode === null) return res.error;
  if (res.signal) return `killed by signal ${res.signal} after ${secs} s`;
  return `exit ${res.exitCode ?? 'unknown'} after ${secs} s`;
}

/** The last `max` characters of the output, for records that must stay small. */
export function outputExcerpt(res: ScriptResult, max = 2000): string {
  const text = res.output.trimEnd();
  return text.length <= max ? text : `...${text.slice(text.length - max)}`;
}
