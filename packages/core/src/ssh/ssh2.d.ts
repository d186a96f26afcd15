// The slice of the `ssh2` client API the host-key scans use. The package ships no types and
// @types/ssh2 is not a dependency; these declarations stay internal (no exported signature of
// @nodepool-ts/core/ssh mentions them).
declare module 'ssh2' {
  import type { EventEmitter } from 'node:events';
  import type { Socket } from 'node:net';

  export interface ConnectConfig {
    sock?: Socket;
    username?: string;
    /** ms to wait for the handshake; 0 disables ssh2's own timer */
    readyTimeout?: number;
    tryKeyboard?: boolean;
    /** raw host key blob (wire format) when no hostHash is set; return false to refuse */
    hostVerifier?: (key: Buffer) => boolean;
    algorithms?: { serverHostKey?: string[] };
  }

  export class Client extends EventEmitter {
    connect(config: ConnectConfig): this;
    end(): this;
    destroy(): this;
  }
}
