// Is a host alive, and is it the host we think it is? A TCP connect within the host's timeout,
// then (for ssh / network_cli) an SSH key exchange per configured key type, in parallel, with
// @nodepool-ts/core/ssh: a key counts only once the server has proved it holds it. No
// authentication is attempted. The result compares the keys with the configured `host-key`s.
import {
  DEFAULT_SCAN_TYPES, SSH_CONNECTION_TYPES, SshError, connectTcp, fingerprint, hostKeyType, normalizeHostKey, resolveHost,
  scanHostKey, type HostAddress,
} from '@nodepool-ts/core/ssh';
import { StaticDriverError, type StaticErrorCode } from './errors.js';

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
  /**
   * `host-key-checking: false` (Nodepool): the host is not contacted at all, only its name
   * resolved; it counts as alive with its configured keys.
   */
  hostKeyChecking?: boolean;
}

export type HostCheckResult =
  | { ok: true; address: HostAddress; keys: string[]; ms: number }
  | { ok: false; code: StaticErrorCode; reason: string; ms: number };

function remaining(deadline: number): number {
  return Math.max(0, deadline - Date.now());
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
    if (err instanceof StaticDriverError || err instanceof SshError) {
      return { ok: false, code: err.code, reason: err.message, ms: Date.now() - started };
    }
    return { ok: false, code: 'EKEYSCAN', reason: `${label}: ${(err as Error).message}`, ms: Date.now() - started };
  };
  let address: HostAddress;
  try {
    address = await resolveHost(target.name, target.timeoutMs);
  } catch (err) {
    return fail(err);
  }
  if (target.hostKeyChecking === false) {
    return { ok: true, address, keys: target.hostKeys.map(normalizeHostKey), ms: Date.now() - started };
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
  if (firstError instanceof SshError && (firstError.code === 'ECONNECT' || firstError.code === 'EABORTED')) {
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
