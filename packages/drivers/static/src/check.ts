// Is a host alive, and is it the host we think it is? A TCP connect within the host's timeout,
// then (for ssh / network_cli) an SSH key exchange per configured key type through `ssh2`: the
// key counts only once the server has proved it holds it (ssh2 verifies the exchange signature
// before its `handshake` event). No authentication is attempted; the connection is closed as
// soon as the key is known.
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { lookup } from 'node:dns/promises';
import { createHash } from 'node:crypto';
import { Client } from 'ssh2';
import { sleep } from '@nodepool-ts/core/util';
import { StaticDriverError, type StaticErrorCode } from './errors.js';

/** Connection types whose hosts speak SSH (host keys are scanned and compared). */
export const SSH_CONNECTION_TYPES: ReadonlySet<string> = new Set(['ssh', 'network_cli']);

/** Key types scanned when no host-key is configured (what ssh-keyscan asks for by default). */
export const DEFAULT_SCAN_TYPES: readonly string[] = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ssh-rsa'];

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

export interface HostAddress {
  /** the address connected to (first getaddrinfo answer, as Nodepool's set_node_ip) */
  address: string;
  family: 4 | 6;
  publicIpv4: string | null;
  publicIpv6: string | null;
}

export interface HostCheckTarget {
  /** host name or address (the static node's `name`) */
  name: string;
  port: number;
  timeoutMs: number;
  connectionType: string;
  /** configured `host-key` entries; each must be among the host's keys */
  hostKeys: readonly string[];
  /**
   * One SSH connection instead of one per key type: the first configured key must be offered
   * (or, with none configured, any key). For the check at hand-out, after a full check at
   * registration; it keeps the unauthenticated connections a busy pool makes to a minimum.
   */
  quick?: boolean;
}

export type HostCheckResult =
  | { ok: true; address: HostAddress; keys: string[]; ms: number }
  | { ok: false; code: StaticErrorCode; reason: string; ms: number };

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

export function hostKeyType(key: string): string {
  return normalizeHostKey(key).split(' ')[0] ?? '';
}

/** OpenSSH's fingerprint (`SHA256:<base64, unpadded>`), for log lines. */
export function fingerprint(key: string): string {
  const b64 = normalizeHostKey(key).split(' ')[1] ?? '';
  const digest = createHash('sha256').update(Buffer.from(b64, 'base64')).digest('base64');
  return `SHA256:${digest.replace(/=+$/, '')}`;
}

function keyFromBlob(blob: Buffer): string {
  // The blob starts with the key type as an SSH string (uint32 length + bytes).
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : 0;
  const type = blob.subarray(4, 4 + len).toString('latin1');
  return `${type} ${blob.toString('base64')}`;
}

function abortError(what: string): StaticDriverError {
  return new StaticDriverError('EABORTED', `${what}: cancelled`);
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
        timer = setTimeout(() => reject(new StaticDriverError('EDNS',
          `${name}: name resolution timed out after ${timeoutMs} ms`, { host: name })), timeoutMs);
      }),
    ]);
    const family = found.family === 6 ? 6 : 4;
    return family === 4
      ? { address: found.address, family, publicIpv4: found.address, publicIpv6: null }
      : { address: found.address, family, publicIpv4: null, publicIpv6: found.address };
  } catch (err) {
    if (err instanceof StaticDriverError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new StaticDriverError('EDNS', `${name}: cannot resolve host name (${code})`, { host: name });
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
    const fail = (err: StaticDriverError): void => {
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
      fail(new StaticDriverError('ECONNECT', `${label}: TCP connect failed (${err.code ?? err.message})`,
        { host: address, port }));
    };
    const timer = setTimeout(() => fail(new StaticDriverError('ECONNECT',
      `${label}: TCP connect timed out after ${timeoutMs} ms`, { host: address, port })), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', onConnect);
    sock.once('error', onError);
  });
}

/**
 * One SSH key exchange: resolves with the verified host key (`"<type> <base64>"`). `keyType`
 * null lets the server pick among ssh2's defaults.
 */
export async function scanHostKey(address: string, port: number, keyType: string | null,
  deadline: number, signal?: AbortSignal, label = `${address}:${port}`): Promise<string> {
  const algorithms = keyType === null ? undefined : ALGORITHMS_FOR_TYPE[keyType];
  if (keyType !== null && algorithms === undefined) {
    throw new StaticDriverError('EHOSTKEY', `${label}: host key type ${keyType} cannot be checked`, { keyType });
  }
  const sock = await connectTcp(address, port, remaining(deadline), signal, label);
  return new Promise<string>((resolve, reject) => {
    const client = new Client();
    let key: Buffer | null = null;
    let settled = false;
    const finish = (err: StaticDriverError | null, value?: string): void => {
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
    const timer = setTimeout(() => finish(new StaticDriverError('EKEYSCAN',
      `${label}: SSH handshake timed out`, { host: address, port })), remaining(deadline));
    signal?.addEventListener('abort', onAbort, { once: true });
    client.on('handshake', () => {
      if (key === null) finish(new StaticDriverError('EKEYSCAN', `${label}: no host key received`));
      else finish(null, keyFromBlob(key));
    });
    client.on('error', (err: Error) => {
      finish(new StaticDriverError('EKEYSCAN', `${label}: SSH handshake failed (${err.message})`,
        { host: address, port, keyType }));
    });
    client.on('close', () => {
      finish(new StaticDriverError('EKEYSCAN', `${label}: connection closed during the SSH handshake`,
        { host: address, port }));
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
      finish(new StaticDriverError('EKEYSCAN', `${label}: ${(err as Error).message}`));
    }
  });
}

/**
 * Alive check of one host (registration, hand-out, `cron: check`). Never throws: a failure is a
 * result with a code and a reason fit for the log.
 */
export async function checkHost(target: HostCheckTarget, signal?: AbortSignal): Promise<HostCheckResult> {
  const started = Date.now();
  const deadline = started + target.timeoutMs;
  const label = `${target.name}:${target.port}`;
  const fail = (err: unknown): HostCheckResult => {
    if (err instanceof StaticDriverError) return { ok: false, code: err.code, reason: err.message, ms: Date.now() - started };
    return { ok: false, code: 'EKEYSCAN', reason: `${label}: ${(err as Error).message}`, ms: Date.now() - started };
  };
  let address: HostAddress;
  try {
    address = await resolveHost(target.name, target.timeoutMs);
  } catch (err) {
    return fail(err);
  }
  if (!SSH_CONNECTION_TYPES.has(target.connectionType)) {
    try {
      const sock = await connectTcp(address.address, target.port, remaining(deadline), signal, label);
      sock.destroy();
      return { ok: true, address, keys: [], ms: Date.now() - started };
    } catch (err) {
      return fail(err);
    }
  }
  const configured = target.hostKeys.map(normalizeHostKey);
  const wanted = target.quick ? configured.slice(0, 1) : configured;
  const types: (string | null)[] = wanted.length > 0 ? [...new Set(wanted.map(hostKeyType))]
    : target.quick ? [null] : [...DEFAULT_SCAN_TYPES];
  const scans = await Promise.allSettled(types.map((t) => scanHostKey(address.address, target.port, t, deadline, signal, label)));
  const keys: string[] = [];
  let firstError: unknown = null;
  for (const s of scans) {
    if (s.status === 'fulfilled') keys.push(s.value);
    else firstError ??= s.reason;
  }
  // No key at all: the scan failure (refused, timed out, not SSH) is the reason, not a mismatch.
  if (keys.length === 0) return fail(firstError);
  // Nothing configured to compare: any verified key proves an SSH server is there.
  if (wanted.length === 0) return { ok: true, address, keys, ms: Date.now() - started };
  const missing = wanted.filter((k) => !keys.includes(k));
  if (missing.length === 0) return { ok: true, address, keys, ms: Date.now() - started };
  // A connect failure explains a missing key better than "mismatch".
  if (firstError instanceof StaticDriverError && (firstError.code === 'ECONNECT' || firstError.code === 'EABORTED')) {
    return fail(firstError);
  }
  const offered = keys.map((k) => `${hostKeyType(k)} ${fingerprint(k)}`).join(', ') || 'none';
  const expected = missing.map((k) => `${hostKeyType(k)} ${fingerprint(k)}`).join(', ');
  const why = firstError instanceof Error ? `; ${firstError.message}` : '';
  return {
    ok: false,
    code: 'EHOSTKEY',
    reason: `${label}: host key mismatch: configured ${expected} not offered (host offers ${offered})${why}`,
    ms: Date.now() - started,
  };
}

/**
 * Key scan for booted cloud servers (fits the launcher's `keyscan` hook): retries every 2 s with
 * at most 10 s per attempt until `timeoutMs`, like Nodepool's nodescan, and returns every key
 * of the default types the server offers.
 */
export async function keyscan(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    if (signal?.aborted) throw abortError(`${host}:${port}`);
    const attemptDeadline = Math.min(deadline, Date.now() + 10_000);
    try {
      const address = await resolveHost(host, remaining(attemptDeadline));
      const scans = await Promise.allSettled(
        DEFAULT_SCAN_TYPES.map((t) => scanHostKey(address.address, port, t, attemptDeadline, signal, `${host}:${port}`)));
      const keys = scans.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
      if (keys.length > 0) return keys;
      last = scans.find((s) => s.status === 'rejected')?.reason ?? null;
    } catch (err) {
      last = err;
    }
    if (Date.now() + 2_000 >= deadline) break;
    await sleep(2_000, signal);
  }
  if (last instanceof Error) throw last;
  throw new StaticDriverError('EKEYSCAN', `${host}:${port}: no SSH host key within ${timeoutMs} ms`);
}
