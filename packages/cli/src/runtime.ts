// The concrete CliContext `main()` hands to commands, plus what only our own commands need: a
// lazily connected ZooKeeper client that `main()` closes before returning, so the process exits
// as soon as the command is done.
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { loadConfig } from '@nodepool-ts/core/config';
import type { Config } from '@nodepool-ts/core/config';
import { getLogger } from '@nodepool-ts/core/log';
import { nowSeconds } from '@nodepool-ts/core/util';
import { ZkConnectError, ZkTlsError, ZooKeeper } from '@nodepool-ts/core/zk';
import type { CliContext, CliLogLevel } from './context.js';
import { CliError } from './errors.js';

/** Where the CLI's input and output go; every member has a process default. */
export interface CliIO {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  stdin?: Readable;
  /** float Unix seconds */
  now?: () => number;
  /** bound on the initial ZooKeeper connect (default 10 s) */
  zkConnectTimeoutMs?: number;
}

export const DEFAULT_ZK_CONNECT_TIMEOUT_MS = 10_000;

/** The context our own commands get: CliContext plus ZooKeeper. */
export interface CommandContext extends CliContext {
  /** Connects on first use (bounded), then returns the same client. */
  zookeeper(): Promise<ZooKeeper>;
}

const LEVELS: Record<CliLogLevel, number> = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40 };

/** `2026-11-27 11:37:18,311` — Python logging's default asctime, local time. */
function asctime(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} `
    + `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())},${p(d.getMilliseconds(), 3)}`;
}

export interface RuntimeOptions {
  configFile: string;
  secureFile: string | null;
  json: boolean;
  debug: boolean;
  logLevel: CliLogLevel;
}

export class Runtime implements CommandContext {
  readonly configFile: string;
  readonly secureFile: string | null;
  json: boolean;
  readonly debug: boolean;
  private readonly logLevel: number;
  private readonly write: (text: string) => void;
  private readonly writeErr: (text: string) => void;
  private readonly stdin: Readable;
  private readonly clock: () => number;
  private readonly zkConnectTimeoutMs: number;
  private configPromise: Promise<Config> | null = null;
  private zkPromise: Promise<ZooKeeper> | null = null;
  private lines: AsyncIterator<string> | null = null;
  private readlineClose: (() => void) | null = null;

  constructor(opts: RuntimeOptions, io: CliIO) {
    this.configFile = opts.configFile;
    this.secureFile = opts.secureFile;
    this.json = opts.json;
    this.debug = opts.debug;
    this.logLevel = LEVELS[opts.logLevel];
    this.write = io.stdout ?? ((t) => { process.stdout.write(t); });
    this.writeErr = io.stderr ?? ((t) => { process.stderr.write(t); });
    this.stdin = io.stdin ?? process.stdin;
    this.clock = io.now ?? nowSeconds;
    this.zkConnectTimeoutMs = io.zkConnectTimeoutMs ?? DEFAULT_ZK_CONNECT_TIMEOUT_MS;
  }

  out(text: string): void {
    this.write(text + '\n');
  }

  err(text: string): void {
    this.writeErr(text + '\n');
  }

  log(level: CliLogLevel, name: string, message: string): void {
    if (LEVELS[level] < this.logLevel) return;
    this.err(`${asctime(new Date())} ${level} ${name}: ${message}`);
  }

  now(): number {
    return this.clock();
  }

  loadConfig(): Promise<Config> {
    this.configPromise ??= loadConfig(this.configFile, { secureFile: this.secureFile });
    return this.configPromise;
  }

  async prompt(question: string): Promise<string> {
    this.write(question);
    if (this.lines === null) {
      const rl = createInterface({ input: this.stdin, terminal: false });
      this.lines = rl[Symbol.asyncIterator]();
      this.readlineClose = () => rl.close();
    }
    const next = await this.lines.next();
    return next.done ? '' : next.value;
  }

  zookeeper(): Promise<ZooKeeper> {
    this.zkPromise ??= this.connect();
    return this.zkPromise;
  }

  private async connect(): Promise<ZooKeeper> {
    const config = await this.loadConfig();
    const servers = config.zookeeperServers;
    if (servers.length === 0) {
      throw new CliError('ENOZK', `No zookeeper-servers configured in ${config.file}`);
    }
    let zk: ZooKeeper;
    try {
      zk = new ZooKeeper({
        servers,
        sessionTimeoutMs: config.zookeeperTimeoutMs, tls: config.zookeeperTls,
        connectTimeoutMs: this.zkConnectTimeoutMs,
        log: getLogger('nodepool.zk.ZooKeeper'),
      });
    } catch (err) {
      if (err instanceof ZkTlsError) throw new CliError('ETLS', `${config.file}: ${err.message}`);
      throw err;
    }
    try {
      await zk.connect();
    } catch (err) {
      await zk.close().catch(() => undefined);
      const where = servers.map((s) => `${s.host}:${s.port}${s.chroot ?? ''}`).join(',');
      // ZkConnectError says why the last attempt failed, if it knows; anything else (bad host string ...) is appended
      const why = err instanceof ZkConnectError ? err.reason : err instanceof Error ? err.message : String(err);
      throw new CliError('EZKCONNECT',
        `Unable to connect to ZooKeeper at ${where}${config.zookeeperTls ? ' over TLS' : ''} within ${this.zkConnectTimeoutMs / 1000}s${why === null ? '' : `: ${why}`}`,
        1, { servers: where });
    }
    return zk;
  }

  /** Close what the command opened; safe to call more than once. */
  async close(): Promise<void> {
    this.readlineClose?.();
    this.readlineClose = null;
    const pending = this.zkPromise;
    this.zkPromise = null;
    if (pending === null) return;
    const zk = await pending.catch(() => null);
    await zk?.close();
  }
}
