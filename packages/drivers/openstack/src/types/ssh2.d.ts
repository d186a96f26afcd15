// The part of ssh2's API used here (the package ships no types and @types/ssh2 is not
// installed): the client for host-key scans, the server and key generation for the simulator.
declare module 'ssh2' {
  import type { EventEmitter } from 'node:events';
  import type { Duplex } from 'node:stream';

  interface KeyPair { private: string; public: string }

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

  interface AuthContext { reject(): void }

  interface Connection extends EventEmitter {
    on(event: 'authentication', cb: (ctx: AuthContext) => void): this;
    on(event: 'error', cb: (err: Error) => void): this;
    on(event: string, cb: (...args: unknown[]) => void): this;
    end(): void;
  }

  class Server extends EventEmitter {
    constructor(config: { hostKeys: string[] }, listener: (client: Connection) => void);
    listen(port: number, host: string, cb?: () => void): this;
    close(cb?: () => void): this;
  }

  const utils: {
    generateKeyPairSync(type: 'ed25519' | 'rsa' | 'ecdsa', opts?: { comment?: string; bits?: number }): KeyPair;
    parseKey(data: string | Buffer): unknown;
  };

  const ssh2: { Client: typeof Client; Server: typeof Server; utils: typeof utils };
  namespace ssh2 {
    type Server = InstanceType<typeof Server>;
  }
  export default ssh2;
}
