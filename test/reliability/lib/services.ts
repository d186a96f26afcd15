// Private services a scenario may break: a three-member ZooKeeper ensemble (scripts/zk-ensemble.sh)
// and a MariaDB (scripts/mariadb.sh) — never the suite's shared ones.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './procs.js';

function script(name: string, args: string[], timeoutMs = 120_000): string {
  const r = spawnSync('bash', [join(REPO, 'scripts', name), ...args], { encoding: 'utf8', timeout: timeoutMs });
  if (r.status !== 0) throw new Error(`${name} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout.trim();
}

/** Send a ZooKeeper four-letter word; '' when nobody answers. */
export function fourLetter(host: string, port: number, word: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const s = createConnection({ host, port });
    const t = setTimeout(() => { s.destroy(); resolve(out); }, timeoutMs);
    s.on('connect', () => s.write(word));
    s.on('data', (d: Buffer) => { out += d.toString(); });
    s.on('close', () => { clearTimeout(t); resolve(out); });
    s.on('error', () => { clearTimeout(t); resolve(out); });
  });
}

export type MemberMode = 'leader' | 'follower' | 'down' | 'no-quorum' | 'standalone';

export class ZkEnsemble {
  readonly dir: string;
  hosts = '';

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'np-zkens-'));
  }

  start(): string {
    this.hosts = script('zk-ensemble.sh', ['start', this.dir]);
    return this.hosts;
  }

  /** Client port of member n (1..3). */
  port(n: number): number {
    const hp = this.hosts.split(',')[n - 1] ?? '';
    return Number(hp.split(':')[1]);
  }

  status(): { n: number; port: number; pid: string; mode: MemberMode }[] {
    return script('zk-ensemble.sh', ['status', this.dir]).split('\n').map((l) => {
      const [n, port, pid, mode] = l.split(' ');
      return { n: Number(n), port: Number(port), pid: pid ?? '-', mode: (mode ?? 'down') as MemberMode };
    });
  }

  leader(): number {
    return Number(script('zk-ensemble.sh', ['leader', this.dir]));
  }

  stopMember(n: number): void {
    script('zk-ensemble.sh', ['stop-member', this.dir, String(n)]);
  }

  killMember(n: number): void {
    script('zk-ensemble.sh', ['kill-member', this.dir, String(n)]);
  }

  startMember(n: number): void {
    script('zk-ensemble.sh', ['start-member', this.dir, String(n)]);
  }

  /** Client connections member n serves now (`mntr`), 0 when it does not answer. */
  async connections(n: number): Promise<number> {
    const out = await fourLetter('127.0.0.1', this.port(n), 'mntr');
    const m = /zk_num_alive_connections\s+(\d+)/.exec(out);
    return m ? Number(m[1]) : 0;
  }

  destroy(): void {
    try {
      script('zk-ensemble.sh', ['stop', this.dir]);
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

export function mariadbAvailable(): boolean {
  try {
    execFileSync('bash', ['-c', 'command -v mariadbd || test -x /usr/sbin/mariadbd || test -x /usr/sbin/mysqld'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A MariaDB of the scenario's own: stop()/start() keep its port and password (same URI). */
export class PrivateMariaDb {
  readonly dir: string;
  uri = '';

  constructor() {
    // a short path: the unix socket lives in it
    this.dir = mkdtempSync(join(tmpdir(), 'np-rdb-'));
  }

  start(): string {
    this.uri = script('mariadb.sh', ['start', this.dir]).split('\n').pop() ?? '';
    return this.uri;
  }

  stop(): void {
    script('mariadb.sh', ['stop', this.dir]);
  }

  destroy(): void {
    try {
      this.stop();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
