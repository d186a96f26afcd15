// The slice of the `ssh2` client API this driver uses. The package ships no types and
// @types/ssh2 is not a dependency; these declarations stay internal (no exported signature of
// this package mentions them).
declare module 'ssh2' {
  import type { EventEmitter } from 'node:events';
  import type { Duplex, Readable } from 'node:stream';
  import type { Socket } from 'node:net';

  export interface Algorithms {
    serverHostKey?: string[];
    kex?: string[];
    cipher?: string[];
    hmac?: string[];
  }

  export interface ConnectConfig {
    host?: string;
    port?: number;
    sock?: Socket;
    username?: string;
    privateKey?: Buffer | string;
    passphrase?: string;
    /** ms to wait for the handshake; 0 disables ssh2's own timer */
    readyTimeout?: number;
    keepaliveInterval?: number;
    /** raw host key blob (wire format) when no hostHash is set; return false to refuse */
    hostVerifier?: (key: Buffer) => boolean;
    algorithms?: Algorithms;
    tryKeyboard?: boolean;
    debug?: (msg: string) => void;
  }

  export interface ClientChannel extends Duplex {
    stderr: Readable;
    signal(name: string): boolean;
    close(): void;
    on(event: 'exit', listener: (code: number | null, signal?: string, dump?: boolean, desc?: string) => void): this;
    on(event: 'close', listener: () => void): this;
    on(event: 'data', listener: (chunk: Buffer) => void): this;
    on(event: string, listener: (...args: unknown[]) => void): this;
  }

  export interface ExecOptions {
    env?: Record<string, string>;
    pty?: boolean;
  }

  export class Client extends EventEmitter {
    connect(config: ConnectConfig): this;
    exec(command: string, callback: (err: Error | undefined, channel: ClientChannel) => void): boolean;
    exec(command: string, options: ExecOptions, callback: (err: Error | undefined, channel: ClientChannel) => void): boolean;
    end(): this;
    destroy(): this;
  }
}
