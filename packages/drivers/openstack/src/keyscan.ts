// Host-key scan of a booted server (Nodepool's nodescan, §3.5): connect to host:port every 2 s
// until the deadline; once the port answers, run one SSH key exchange per host-key type and
// collect the key the server proves it holds, as `"<type> <base64>"` (known_hosts form without
// the host). For connection types without SSH (winrm) only the port is waited for.
import { connect as tcpConnect, type Socket } from 'node:net';
import ssh2 from 'ssh2';

/** Host-key algorithms asked for, one handshake each, in Nodepool's order (DSA is long gone). */
export const HOST_KEY_ALGORITHMS = ['rsa-sha2-512', 'ecdsa-sha2-nistp256', 'ssh-ed25519'] as const;

const RETRY_MS = 2000;
const CONNECT_TIMEOUT_MS = 10_000;

export type KeyscanFailure = 'timeout' | 'aborted' | 'no-keys';

export class KeyscanError extends Error {
  readonly code = 'EKEYSCAN' as const;
  constructor(readonly host: string, readonly port: number, readonly reason: KeyscanFailure, message: string) {
    super(message);
    this.name = 'KeyscanError';
  }
}

export interface KeyscanOptions {
  /** false (winrm): only wait for the port to accept connections */
  gatherKeys?: boolean;
  /** seconds between connection attempts (default 2, as Nodepool) */
  retryMs?: number;
}

/** The key type inside an SSH public key blob (its first length-prefixed string). */
export function keyType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1');
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener('abort', done, { once: true });
  });
}

function openSocket(host: string, port: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<Socket | null> {
  return new Promise((resolve) => {
    const sock = tcpConnect({ host, port });
    let settled = false;
    const finish = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      sock.removeAllListeners('error');
      sock.removeAllListeners('connect');
      if (ok) {
        resolve(sock);
      } else {
        sock.destroy();
        resolve(null);
      }
    };
    const onAbort = (): void => finish(false);
    const timer = setTimeout(() => finish(false), Math.max(1, timeoutMs));
    signal?.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', () => finish(true));
    sock.once('error', () => finish(false));
  });
}

/**
 * One key exchange over `sock` restricted to `algorithm`; the key the server offered, or null.
 * The socket is ours (ssh2 leaves a half-closed socket of its own open), and destroyed here.
 */
function hostKey(algorithm: string, timeoutMs: number, sock: Socket): Promise<string | null> {
  return new Promise((resolve) => {
    const client = new ssh2.Client();
    let key: Buffer | null = null;
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.removeAllListeners();
      client.on('error', () => undefined);
      client.destroy();
      sock.destroy();
      resolve(key ? `${keyType(key)} ${key.toString('base64')}` : null);
    };
    const timer = setTimeout(finish, Math.max(1, timeoutMs));
    client.on('error', finish);
    client.on('close', finish);
    client.on('ready', finish);
    client.connect({
      sock,
      username: 'nodepool-keyscan',
      readyTimeout: Math.max(1, timeoutMs),
      algorithms: { serverHostKey: [algorithm] },
      // Refusing the key ends the handshake right after the server proved it holds the key.
      hostVerifier: (k: Buffer) => {
        key = Buffer.from(k);
        return false;
      },
    });
  });
}

/**
 * Scans `host:port` until `timeoutMs` has passed. Resolves with the host keys (empty when
 * `gatherKeys` is false); rejects with KeyscanError `timeout` when the port never accepted a
 * connection or no handshake ever produced a key, `aborted` on `signal`.
 */
export async function keyscan(host: string, port: number, timeoutMs: number, signal?: AbortSignal,
  opts: KeyscanOptions = {}): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  const retryMs = opts.retryMs ?? RETRY_MS;
  let portOpen = false;
  for (;;) {
    if (signal?.aborted) throw new KeyscanError(host, port, 'aborted', `keyscan of ${host}:${port} aborted`);
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new KeyscanError(host, port, 'timeout', portOpen
        ? `Timeout scanning ${host}:${port} for host keys: the port is open but no SSH host key was received within ${timeoutMs / 1000} s`
        : `Timeout connecting to ${host} on port ${port} after ${timeoutMs / 1000} s`);
    }
    const sock = await openSocket(host, port, Math.min(CONNECT_TIMEOUT_MS, remaining), signal);
    if (sock) {
      portOpen = true;
      if (opts.gatherKeys === false) {
        sock.destroy();
        return [];
      }
      const keys: string[] = [];
      let next: Socket | null = sock;
      for (const alg of HOST_KEY_ALGORITHMS) {
        const left = deadline - Date.now();
        if (left <= 0 || signal?.aborted) break;
        next ??= await openSocket(host, port, Math.min(CONNECT_TIMEOUT_MS, left), signal);
        if (!next) break;
        const k = await hostKey(alg, Math.min(CONNECT_TIMEOUT_MS, deadline - Date.now()), next);
        next = null;
        if (k && !keys.includes(k)) keys.push(k);
      }
      if (keys.length > 0) return keys;
    }
    await sleep(Math.min(retryMs, Math.max(0, deadline - Date.now())), signal);
  }
}
