// SSH host keys for every driver. A key is taken from an SSH key exchange (ssh2) that ends once
// the server has proved it holds the key: ssh2 checks the exchange signature before its
// `handshake` event, and the connection is closed right then, before any authentication.
//
// - keyscan(): Nodepool's nodescan for booted cloud servers (§3.5) — connect every 2 s until the
//   deadline; once the port answers, one exchange per key type in Nodepool's order (RSA, ECDSA
//   P-256, Ed25519), keys as `"<type> <base64>"`. Connection types without SSH (winrm) only wait
//   for the port. The launcher and the OpenStack driver's host-key hook use it.
// - resolveHost / connectTcp / scanHostKey and the key-text helpers: the static driver's alive
//   check, which compares the keys with the configured `host-key`s, and its ready-script login.
import { createHash } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { Client } from 'ssh2';
import { sleep } from '../util/index.js';

export type SshErrorCode =
  | 'EDNS' // the host name does not resolve
  | 'ECONNECT' // TCP connect refused / unreachable / timed out
  | 'EKEYSCAN' // the SSH handshake failed or timed out (no host key obtained)
  | 'EHOSTKEY' // a host key type that cannot be asked for
  | 'EABORTED'; // cancelled through the AbortSignal

export class SshError extends Error {
  constructor(readonly code: SshErrorCode, message: string, readonly context: Record<string, unknown> = {}) {
    super(message);
    this.name = 'SshError';
  }
}

/** Connection types whose hosts speak SSH (host keys are scanned and compared). */
export const SSH_CONNECTION_TYPES: ReadonlySet<string> = new Set(['ssh', 'network_cli']);

/** Key types the static driver scans when no host-key is configured (ssh-keyscan's default). */
export const DEFAULT_SCAN_TYPES: readonly string[] = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ssh-rsa'];

/** Key types keyscan() asks for, one exchange each, in Nodepool's order (DSA is long gone). */
export const NODESCAN_KEY_TYPES: readonly string[] = ['ssh-rsa', 'ecdsa-sha2-nistp256', 'ssh-ed25519'];

// Host key algorithms to offer in KEXINIT to obtain a key of a given type. An RSA key is used
// with the SHA-2 signature algorithms by current OpenSSH, which refuses plain `ssh-rsa`.
const ALGORITHMS_FOR_TYPE: Readonly<Record<string, readonly string[]>> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
  'ssh-dss': ['ssh-dss'],
};

/** The host key algorithms that obtain a key of `keyType` (a type not listed: itself). */
export function hostKeyAlgorithms(keyType: string): string[] {
  return [...(ALGORITHMS_FOR_TYPE[keyType] ?? [keyType])];
}

/** Between two connection attempts of keyscan() (Nodepool: 2 s). */
const RETRY_MS = 2000;
/** At most this long per TCP connect or key exchange of keyscan(). */
const ATTEMPT_MS = 10_000;

export interface HostAddress {
  /** the address connected to (first getaddrinfo answer, as Nodepool's set_node_ip) */
  address: string;
  family: 4 | 6;
  publicIpv4: string | null;
  publicIpv6: string | null;
}

export interface KeyscanOptions {
  /** false (winrm): only wait for the port to accept connections */
  gatherKeys?: boolean;
  /** ms between connection attempts (default 2000, as Nodepool) */
  retryMs?: number;
}

/** `"<type> <base64>"` from a configured key, ssh-keyscan line or authorized_keys line. */
export function normalizeHostKey(text: string): string {
  const tokens = text.trim().split(/\s+/);
  for (let i = 0; i + 1 < tokens.length; i++) {
    const t = tokens[i] ?? '';
    if (/^(ssh-|ecdsa-|sk-)/.test(t) && /^[A-Za-z0-9+/]+={0,3}$/.test(tokens[i + 1] ?? '')) {
      return `${t} ${tokens[i + 1]}`;
    }
  }
  return tokens.join(' ');
}

/** The type of a key in text form (`ssh-ed25519 AAAA…` → `ssh-ed25519`). */
export function hostKeyType(key: string): string {
  return normalizeHostKey(key).split(' ')[0] ?? '';
}

/** OpenSSH's fingerprint (`SHA256:<base64, unpadded>`), for log lines. */
export function fingerprint(key: string): string {
  const b64 = normalizeHostKey(key).split(' ')[1] ?? '';
  const digest = createHash('sha256').update(Buffer.from(b64, 'base64')).digest('base64');
  return `SHA256:${digest.replace(/=+$/, '')}`;
}

/** The key type inside an SSH public key blob (its first length-prefixed string). */
export function keyType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** A key blob as the server sent it, in text form: `"<type> <base64>"`. */
export function keyFromBlob(blob: Buffer): string {
  return `${keyType(blob)} ${blob.toString('base64')}`;
}

function abortError(label: string): SshError {
  return new SshError('EABORTED', `${label}: cancelled`);
}

function isAbort(err: unknown): boolean {
  return err instanceof SshError && err.code === 'EABORTED';
}

function remaining(deadline: number): number {
  return Math.max(0, deadline - Date.now());
}

/** Resolve like Nodepool's set_node_ip: the first getaddrinfo answer decides v4 or v6. */
export async function resolveHost(name: string, timeoutMs: number): Promise<HostAddress> {
  const literal = isIP(name);
  if (literal !== 0) {
    return literal === 4
      ? { address: name, family: 4, publicIpv4: name, publicIpv6: null }
      : { address: name, family: 6, publicIpv4: null, publicIpv6: name };
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    // getaddrinfo cannot be cancelled; the race only bounds how long we wait for it.
    const found = await Promise.race([
      lookup(name),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new SshError('EDNS',
          `${name}: name resolution timed out after ${timeoutMs} ms`, { host: name })), timeoutMs);
      }),
    ]);
    const family = found.family === 6 ? 6 : 4;
    return family === 4
      ? { address: found.address, family, publicIpv4: found.address, publicIpv6: null }
      : { address: found.address, family, publicIpv4: null, publicIpv6: found.address };
  } catch (err) {
    if (err instanceof SshError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new SshError('EDNS', `${name}: cannot resolve host name (${code})`, { host: name });
  } finally {
    clearTimeout(timer);
  }
}

/** Open a TCP connection within `timeoutMs`; the caller owns (and must destroy) the socket. */
export function connectTcp(address: string, port: number, timeoutMs: number, signal?: AbortSignal,
  label = `${address}:${port}`): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError(label));
      return;
    }
    const sock = netConnect({ host: address, port });
    const cleanup = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      sock.removeListener('connect', onConnect);
      sock.removeListener('error', onError);
    };
    const fail = (err: SshError): void => {
      cleanup();
      sock.destroy();
      reject(err);
    };
    const onAbort = (): void => fail(abortError(label));
    const onConnect = (): void => {
      cleanup();
      resolve(sock);
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      fail(new SshError('ECONNECT', `${label}: TCP connect failed (${err.code ?? err.message})`, { host: address, port }));
    };
    const timer = setTimeout(() => fail(new SshError('ECONNECT',
      `${label}: TCP connect timed out after ${timeoutMs} ms`, { host: address, port })), Math.max(1, timeoutMs));
    signal?.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', onConnect);
    sock.once('error', onError);
  });
}

function algorithmsFor(keyType: string | null, label: string): readonly string[] | undefined {
  if (keyType === null) return undefined;
  const algorithms = ALGORITHMS_FOR_TYPE[keyType];
  if (algorithms === undefined) throw new SshError('EHOSTKEY', `${label}: host key type ${keyType} cannot be checked`, { keyType });
  return algorithms;
}

/**
 * One key exchange over `sock` (which it owns and destroys): the verified host key. `keyType`
 * null lets the server pick among ssh2's defaults.
 */
function exchangeHostKey(sock: Socket, keyType: string | null, deadline: number, signal: AbortSignal | undefined,
  label: string): Promise<string> {
  let algorithms: readonly string[] | undefined;
  try {
    algorithms = algorithmsFor(keyType, label);
  } catch (err) {
    sock.destroy();
    return Promise.reject(err);
  }
  return new Promise<string>((resolve, reject) => {
    const client = new Client();
    let key: Buffer | null = null;
    let settled = false;
    const finish = (err: SshError | null, value?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      // Late errors of a connection we are done with must not become unhandled 'error' events.
      client.on('error', () => undefined);
      client.end();
      sock.destroy();
      if (err) reject(err);
      else resolve(value ?? '');
    };
    const onAbort = (): void => finish(abortError(label));
    const timer = setTimeout(() => finish(new SshError('EKEYSCAN',
      `${label}: SSH handshake timed out`, { host: label })), Math.max(1, remaining(deadline)));
    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    client.on('handshake', () => {
      if (key === null) finish(new SshError('EKEYSCAN', `${label}: no host key received`));
      else finish(null, keyFromBlob(key));
    });
    client.on('error', (err: Error) => {
      finish(new SshError('EKEYSCAN', `${label}: SSH handshake failed (${err.message})`, { host: label, keyType }));
    });
    client.on('close', () => {
      finish(new SshError('EKEYSCAN', `${label}: connection closed during the SSH handshake`, { host: label }));
    });
    try {
      client.connect({
        sock,
        username: 'nodepool',
        readyTimeout: 0,
        tryKeyboard: false,
        hostVerifier: (blob: Buffer) => {
          key = Buffer.from(blob);
          return true;
        },
        ...(algorithms ? { algorithms: { serverHostKey: [...algorithms] } } : {}),
      });
    } catch (err) {
      finish(new SshError('EKEYSCAN', `${label}: ${(err as Error).message}`));
    }
  });
}

/**
 * Connect and run one SSH key exchange: resolves with the verified host key
 * (`"<type> <base64>"`). `keyType` null lets the server pick among ssh2's defaults.
 */
export async function scanHostKey(address: string, port: number, keyType: string | null,
  deadline: number, signal?: AbortSignal, label = `${address}:${port}`): Promise<string> {
  algorithmsFor(keyType, label);
  const sock = await connectTcp(address, port, remaining(deadline), signal, label);
  return exchangeHostKey(sock, keyType, deadline, signal, label);
}

/**
 * Nodepool's nodescan: scans `host:port` until `timeoutMs` has passed and resolves with the host
 * keys (empty when `gatherKeys` is false). Rejects with SshError `EKEYSCAN` when the port never
 * accepted a connection or no exchange produced a key in time, `EABORTED` on `signal`.
 */
export async function keyscan(host: string, port: number, timeoutMs: number, signal?: AbortSignal,
  opts: KeyscanOptions = {}): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  const retryMs = opts.retryMs ?? RETRY_MS;
  const label = `${host}:${port}`;
  let portOpen = false;
  let last: Error | null = null;
  for (;;) {
    if (signal?.aborted) throw abortError(`keyscan of ${label}`);
    if (remaining(deadline) <= 0) {
      const why = last ? ` (last attempt: ${last.message})` : '';
      throw new SshError('EKEYSCAN', portOpen
        ? `Timeout scanning ${label} for host keys: the port is open but no SSH host key was received within ${timeoutMs / 1000} s${why}`
        : `Timeout connecting to ${host} on port ${port} after ${timeoutMs / 1000} s${why}`, { host, port });
    }
    let sock: Socket | null = null;
    try {
      sock = await connectTcp(host, port, Math.min(ATTEMPT_MS, remaining(deadline)), signal, label);
    } catch (err) {
      if (isAbort(err)) throw err;
      last = err as Error;
    }
    if (sock) {
      portOpen = true;
      if (opts.gatherKeys === false) {
        sock.destroy();
        return [];
      }
      const keys: string[] = [];
      // the connection that found the port open serves the first exchange
      let next: Socket | null = sock;
      for (const type of NODESCAN_KEY_TYPES) {
        const attemptDeadline = Math.min(deadline, Date.now() + ATTEMPT_MS);
        if (remaining(attemptDeadline) <= 0 || signal?.aborted) break;
        try {
          const s: Socket = next ?? await connectTcp(host, port, remaining(attemptDeadline), signal, label);
          next = null;
          const k = await exchangeHostKey(s, type, attemptDeadline, signal, label);
          if (!keys.includes(k)) keys.push(k);
        } catch (err) {
          if (isAbort(err)) throw err;
          last = err as Error;
        }
      }
      next?.destroy();
      if (keys.length > 0) return keys;
    }
    await sleep(Math.min(retryMs, remaining(deadline)), signal);
  }
}
