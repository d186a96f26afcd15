// Host-key endpoints for simulated servers: each ACTIVE server gets a real SSH server (ssh2) on
// its fixed IPs, with its own ed25519 host key, so the launcher's keyscan does a genuine SSH
// handshake. Servers on a loopback network (127.0.0.0/8 is all local on Linux) are reachable.
import { createServer as createTcpServer } from 'node:net';
import ssh2 from 'ssh2';

interface Endpoint {
  privateKey: string;
  publicKey: string;
  ips: string[];
  listeners: ssh2.Server[];
}

export class SshEndpoints {
  private readonly endpoints = new Map<string, Endpoint>();
  private down = false;
  private portNumber: number;

  constructor(port: number) {
    this.portNumber = port;
  }

  get port(): number {
    return this.portNumber;
  }

  async start(): Promise<void> {
    if (this.portNumber !== 0) return;
    this.portNumber = await new Promise<number>((resolve, reject) => {
      const s = createTcpServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const a = s.address();
        const p = a !== null && typeof a === 'object' ? a.port : 0;
        s.close(() => resolve(p));
      });
    });
  }

  /** Starts the server's SSH endpoints; returns its host public key (`ssh-ed25519 AAAA...`). */
  open(serverId: string, ips: string[]): string {
    const pair = ed25519KeyPair();
    const ep: Endpoint = { privateKey: pair.private, publicKey: pair.public.split(' ').slice(0, 2).join(' '), ips, listeners: [] };
    this.endpoints.set(serverId, ep);
    if (!this.down) this.listen(ep);
    return ep.publicKey;
  }

  close(serverId: string): void {
    const ep = this.endpoints.get(serverId);
    if (!ep) return;
    this.endpoints.delete(serverId);
    for (const l of ep.listeners) l.close();
    ep.listeners = [];
  }

  setDown(down: boolean): void {
    if (down === this.down) return;
    this.down = down;
    for (const ep of this.endpoints.values()) {
      if (down) {
        for (const l of ep.listeners) l.close();
        ep.listeners = [];
      } else {
        this.listen(ep);
      }
    }
  }

  async stop(): Promise<void> {
    for (const id of [...this.endpoints.keys()]) this.close(id);
  }

  private listen(ep: Endpoint): void {
    for (const ip of ep.ips) {
      const server = new ssh2.Server({ hostKeys: [ep.privateKey] }, (client) => {
        client.on('error', () => undefined);
        client.on('authentication', (ctx) => ctx.reject());
      });
      server.on('error', () => undefined);
      server.listen(this.portNumber, ip);
      ep.listeners.push(server);
    }
  }
}

/**
 * An ed25519 key pair ssh2 can read back. Without its optional native binding, ssh2's generator
 * produces a private key its own parser rejects about once in 150 keys ("Malformed OpenSSH
 * private key"); such a pair is simply generated again.
 */
export function ed25519KeyPair(comment?: string): { private: string; public: string } {
  for (;;) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', comment ? { comment } : undefined);
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error)) return pair;
  }
}
