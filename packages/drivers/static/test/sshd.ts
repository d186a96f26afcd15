// Real OpenSSH servers for the static driver's tests, through scripts/sshd.sh: each on its own
// loopback address and port with its own host keys, all accepting one client key. Stopped by pid.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const SCRIPT = join(ROOT, 'scripts/sshd.sh');

export function freePort(address = '127.0.0.1'): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, address, () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => res(port));
    });
  });
}

export interface ClientKey {
  dir: string;
  privateKey: string;
  publicKey: string;
  cleanup(): void;
}

export async function makeClientKey(): Promise<ClientKey> {
  const dir = mkdtempSync(join(tmpdir(), 'np-sshkey-'));
  const privateKey = join(dir, 'id_ed25519');
  await run('ssh-keygen', ['-q', '-N', '', '-t', 'ed25519', '-C', 'nodepool-test', '-f', privateKey]);
  return { dir, privateKey, publicKey: `${privateKey}.pub`, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export class Sshd {
  constructor(readonly dir: string, readonly address: string, readonly port: number, private readonly pubkey: string) {}

  /** `"<type> <base64>"` of each host key the server offers. */
  get hostKeys(): string[] {
    return ['ed25519', 'ecdsa', 'rsa'].map((t) => {
      const [type = '', b64 = ''] = readFileSync(join(this.dir, `ssh_host_${t}_key.pub`), 'utf8').trim().split(/\s+/);
      return `${type} ${b64}`;
    });
  }

  hostKey(type: 'ed25519' | 'ecdsa' | 'rsa'): string {
    const i = ['ed25519', 'ecdsa', 'rsa'].indexOf(type);
    return this.hostKeys[i] ?? '';
  }

  async start(): Promise<void> {
    await run('bash', [SCRIPT, 'start', this.dir, String(this.port), this.pubkey], {
      env: { ...process.env, SSHD_ADDRESS: this.address },
    });
  }

  async stop(): Promise<void> {
    await run('bash', [SCRIPT, 'stop', this.dir]);
  }

  async destroy(): Promise<void> {
    await this.stop().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Start an sshd on `address` (a free port) that lets `key` log in as the current user. */
export async function startSshd(address: string, key: ClientKey): Promise<Sshd> {
  const dir = mkdtempSync(join(tmpdir(), 'np-sshd-'));
  const port = await freePort(address);
  const s = new Sshd(dir, address, port, key.publicKey);
  await s.start();
  return s;
}

export const currentUser = (): string => process.env.USER ?? (process.getuid?.() === 0 ? 'root' : 'root');
