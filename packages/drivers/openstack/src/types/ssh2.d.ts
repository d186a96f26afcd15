// The part of ssh2's client API keyscan.ts uses (the package ships no types and @types/ssh2 is
// not installed).
declare module 'ssh2' {
  import type { EventEmitter } from 'node:events';
  import type { Duplex } from 'node:stream';

  interface ConnectConfig {
    sock: Duplex;
    username?: string;
    readyTimeout?: number;
    algorithms?: { serverHostKey?: string[] };
    /** with no hostHash, `key` is the raw public key blob; returning false aborts the handshake */
    hostVerifier?: (key: Buffer) => boolean;
  }

  class Client extends EventEmitter {
    connect(config: ConnectConfig): this;
    end(): this;
    destroy(): this;
  }

  const ssh2: { Client: typeof Client };
  export default ssh2;
}
