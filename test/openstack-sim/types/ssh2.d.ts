// The part of ssh2's API the simulator uses (the package ships no types and @types/ssh2 is not
// installed): the server that answers host-key scans, and key generation.
declare module 'ssh2' {
  import type { EventEmitter } from 'node:events';

  interface KeyPair { private: string; public: string }

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

  const ssh2: { Server: typeof Server; utils: typeof utils };
  namespace ssh2 {
    type Server = InstanceType<typeof Server>;
  }
  export default ssh2;
}
