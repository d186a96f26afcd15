// TLS to ZooKeeper (Nodepool's `zookeeper-tls`: the client's certificate and key, and the CA that
// signed the servers' certificates; ZooKeeper's secureClientPort). node-zookeeper-client opens
// plain TCP sockets only: each client's connection manager gets a connect() that opens a TLS
// socket instead and starts the session once the handshake is done. Framing, the session
// handshake, pings and watches stay the library's, on the TLS stream.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { connect as tlsConnect, createSecureContext, type SecureContext } from 'node:tls';
import type { Client } from 'node-zookeeper-client';
import type { ZooKeeperTls } from '../config/types.js';

/** A `zookeeper-tls` file that cannot be read or used; the message names the key and the file. */
export class ZkTlsError extends Error {
  readonly code = 'ETLS' as const;
  constructor(message: string) {
    super(message);
    this.name = 'ZkTlsError';
  }
}

/**
 * The TLS context of the three files, read now (so a rotated certificate is used from the next
 * connection on). Throws ZkTlsError naming the key and file that is missing or not PEM.
 */
export function secureContext(tls: ZooKeeperTls): SecureContext {
  const read = (key: keyof ZooKeeperTls): Buffer => {
    try {
      return readFileSync(tls[key]);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new ZkTlsError(`zookeeper-tls.${key}: cannot read ${tls[key]}: ${e.code ?? e.message}`);
    }
  };
  const cert = read('cert');
  const key = read('key');
  const ca = read('ca');
  try {
    // (a CA file without any certificate in it would make createSecureContext trust nothing, silently)
    new X509Certificate(ca);
  } catch (err) {
    throw new ZkTlsError(`zookeeper-tls.ca: ${tls.ca} is not a PEM CA certificate: ${(err as Error).message}`);
  }
  try {
    return createSecureContext({ cert, key, ca });
  } catch (err) {
    throw new ZkTlsError(`zookeeper-tls.cert/key: ${tls.cert} and ${tls.key} are not a PEM certificate and its key: ${(err as Error).message}`);
  }
}

/** node-zookeeper-client's ConnectionManager, as far as connect() uses it. */
interface ConnectionManager {
  setState(state: number): void;
  findNextServer(cb: (server: { host: string; port: number }) => void): void;
  socket: unknown;
  connectTimeout: number;
  connectTimeoutHandler: NodeJS.Timeout | null;
  onSocketConnectTimeout(): void;
  onSocketConnected(): void;
  onSocketData(buffer: Buffer): void;
  onSocketDrain(): void;
  onSocketClosed(hadError: boolean): void;
  onSocketError(err: Error): void;
  connect(): void;
}

/** node-zookeeper-client's STATES.CONNECTING (not exported) */
const CONNECTING = 1;

/**
 * Make `raw` connect over TLS. `tls` is re-read at every connection attempt; when that fails the
 * last good context is used and `onError` hears why. The server's certificate must chain to the
 * CA and name the host connected to (as kazoo checks it).
 */
export function connectOverTls(raw: Client, tls: ZooKeeperTls, first: SecureContext, onError: (err: Error) => void): void {
  const cm = (raw as unknown as { connectionManager: ConnectionManager }).connectionManager;
  let context = first;
  cm.connect = function connectTls(this: ConnectionManager) {
    this.setState(CONNECTING);
    this.findNextServer((server) => {
      try {
        context = secureContext(tls);
      } catch (err) {
        onError(err as Error);
      }
      const socket = tlsConnect({
        host: server.host,
        port: server.port,
        secureContext: context,
        servername: isIP(server.host) === 0 ? server.host : undefined,
      });
      this.socket = socket;
      this.connectTimeoutHandler = setTimeout(this.onSocketConnectTimeout.bind(this), this.connectTimeout);
      socket.setNoDelay();
      socket.on('secureConnect', this.onSocketConnected.bind(this));
      socket.on('data', this.onSocketData.bind(this));
      socket.on('drain', this.onSocketDrain.bind(this));
      socket.on('close', this.onSocketClosed.bind(this));
      socket.on('error', this.onSocketError.bind(this));
    });
  };
}

/**
 * A connection error in a line: OpenSSL's reason rather than its whole error stack, and what a
 * TLS alert from the server means (ZooKeeper closes with such an alert when it does not accept
 * the client's certificate).
 */
export function describeConnectError(err: Error): string {
  const e = err as Error & { code?: unknown; reason?: unknown };
  if (typeof e.code === 'string' && e.code.startsWith('ERR_SSL_') && typeof e.reason === 'string') {
    const refused = /alert (certificate unknown|bad certificate|unknown ca|unsupported certificate|certificate required)/.test(e.reason);
    return `TLS handshake failed: ${e.reason}${refused ? ' (the server did not accept the client certificate)' : ''}`;
  }
  // OpenSSL's verification results (UNABLE_TO_VERIFY_LEAF_SIGNATURE, CERT_HAS_EXPIRED ...) and a
  // certificate that does not name the host
  if (typeof e.code === 'string' && (e.code === 'ERR_TLS_CERT_ALTNAME_INVALID' || /^[A-Z_]*(CERT|SIGNATURE|ISSUER)[A-Z_]*$/.test(e.code))) {
    return `the server's TLS certificate is not accepted (checked against zookeeper-tls.ca): ${e.message.trim()}`;
  }
  return e.message.trim();
}
