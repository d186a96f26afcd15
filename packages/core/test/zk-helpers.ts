// Shared helpers of the ZooKeeper-layer tests: a unique chroot per test on the real server,
// Python (Debian's, with kazoo) driven through child_process, and polling for eventual state.
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import zookeeper from 'node-zookeeper-client';
import { ZooKeeper, type ZooKeeperOptions } from '../src/zk/index.js';

export const ZK_SERVER = process.env.NODEPOOL_TEST_ZK ?? '127.0.0.1:21810';
export const PYTHON = '/usr/bin/python3';
export const KAZOO_DIR = join(dirname(fileURLToPath(import.meta.url)), 'kazoo');
export const silent = pino({ level: 'silent' });

export function uniqueChroot(): string {
  return `/t-${randomBytes(6).toString('hex')}`;
}

export async function connectZk(chroot: string, opts: Partial<ZooKeeperOptions> = {}): Promise<ZooKeeper> {
  const zk = new ZooKeeper({ servers: `${ZK_SERVER}${chroot}`, log: silent, ...opts });
  await zk.connect();
  return zk;
}

/** Two sessions on one fresh chroot, closed and the chroot removed afterwards. */
export async function withTwo(fn: (a: ZooKeeper, b: ZooKeeper) => Promise<void>): Promise<void> {
  const chroot = uniqueChroot();
  const a = await connectZk(chroot);
  const b = await connectZk(chroot);
  try {
    await fn(a, b);
  } finally {
    await a.close();
    await b.close();
    await dropChroot(chroot);
  }
}

/** Remove a test chroot through an un-chrooted client. */
export async function dropChroot(chroot: string): Promise<void> {
  const zk = new ZooKeeper({ servers: ZK_SERVER, log: silent });
  await zk.connect();
  try {
    await zk.deleteRecursive(chroot);
  } finally {
    await zk.close();
  }
}

/**
 * Expire a session the standard way: attach a second client to it and close that one. Our client
 * may win the session back before the thief's close is sent, so retry until the session changed.
 */
export async function expireSession(zk: ZooKeeper): Promise<void> {
  const gen = zk.sessionGeneration;
  for (let attempt = 0; attempt < 5; attempt++) {
    const { id, password } = zk.sessionCredentials();
    const opts = { sessionTimeout: 10_000, sessionId: id, sessionPassword: password };
    const thief = zookeeper.createClient(`${ZK_SERVER}`, opts);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 5000);
      thief.once('connected', () => {
        thief.once('disconnected', () => {
          clearTimeout(t);
          resolve();
        });
        thief.close();
      });
      thief.connect();
    });
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      if (zk.sessionGeneration !== gen) return;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error('could not expire the session');
}

export interface PyResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a script from test/kazoo with Debian's python3 (which has kazoo). */
export function runPython(script: string, args: string[], input?: string): Promise<PyResult> {
  return new Promise((resolve) => {
    const child = execFile(PYTHON, [join(KAZOO_DIR, script), ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err && typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : err ? 1 : 0;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** A long-running python helper that talks line by line on stdin/stdout. */
export class PyProcess {
  private readonly child: ChildProcessWithoutNullStreams;
  private buf = '';
  private readonly lines: string[] = [];
  private waiters: Array<() => void> = [];
  stderr = '';

  constructor(script: string, args: string[]) {
    this.child = spawn(PYTHON, ['-u', join(KAZOO_DIR, script), ...args]);
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        this.lines.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 1);
      }
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
    this.child.stderr.on('data', (d: string) => {
      this.stderr += d;
    });
    this.child.on('exit', () => {
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
  }

  send(line: string): void {
    this.child.stdin.write(line + '\n');
  }

  /** The next output line (rejects after timeoutMs or if the process exits). */
  async next(timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const l = this.lines.shift();
      if (l !== undefined) return l;
      if (this.child.exitCode !== null) throw new Error(`python exited (${this.child.exitCode}): ${this.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for python output; stderr: ${this.stderr}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async expect(line: string, timeoutMs?: number): Promise<void> {
    const got = await this.next(timeoutMs);
    if (got !== line) throw new Error(`python said ${JSON.stringify(got)}, expected ${JSON.stringify(line)}; stderr: ${this.stderr}`);
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.stdin.end();
      setTimeout(() => this.child.kill(), 10_000).unref();
    });
  }
}

/** Poll until fn() returns true (or throw after timeoutMs). */
export async function eventually(fn: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
