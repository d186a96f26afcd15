// Two throughput fixes to node-zookeeper-client's connection manager, applied once per process.
// Both keep its protocol handling intact; they only change how bytes move:
// - writes: the library sends each queued request with its own socket.write (one syscall each);
//   corking the socket until the loop's check phase sends a burst of requests in one writev.
// - reads: after each response in a chunk it re-concatenates the rest of the chunk with an empty
//   buffer and recurses, copying the remainder once per response (quadratic in a large burst, as
//   when `nodepool list` reads 10,000 nodes). Here the chunk is split into whole frames first and
//   the library is handed one exact frame at a time.
// - records: every reply builds its jute records through a generic, spec-walking constructor that
//   zero-fills a fresh ArrayBuffer for each 8-byte field (a Stat has six, built twice per reply);
//   reading 10,000 nodes spent more time in that and the garbage collector than anywhere else.
//   Each record class is replaced by one with the same fields, prototype chain and wire format
//   whose fields come from the pooled allocator and whose reader walks a precomputed field list.
// - errors: a reply's error (NoNode, NodeExists: ordinary answers) is made without a stack trace,
//   which would only show the socket reader and cost more than handling the reply; an error code
//   the library does not know becomes one it does (knownCode) instead of an uncaught exception.
import { createRequire } from 'node:module';
import { withoutStack } from './errors.js';

interface Socket {
  cork(): void;
  uncork(): void;
}

interface ConnectionManagerProto {
  onPacketQueueReadable(this: { socket?: Socket | null }): void;
  onSocketData(this: { pendingBuffer: Buffer | null }, buffer: Buffer): void;
  __nodepoolWirePatched?: boolean;
}

/** The error codes node-zookeeper-client knows (its Exception.create throws on any other). */
const CLIENT_CODES = new Set([0, -1, -2, -3, -4, -5, -6, -7, -8, -100, -101, -102, -103, -108, -110, -111, -112, -113, -114, -115]);

/**
 * A reply's error code as one the client library knows. ZooKeeper servers send codes it never
 * learnt, and its Exception.create threw on them inside the socket's data handler: an uncaught
 * exception (seen as "Unknown code: -12" when a reply raced a session expiry in a test).
 * UNKNOWN_SESSION (-12: the server no longer has the session) is an expired session;
 * SESSION_MOVED (-118: another server owns it now) a lost connection, to be re-established; any
 * other a system error, with the server's code kept in the message.
 */
export function knownCode(code: number): number {
  if (CLIENT_CODES.has(code)) return code;
  if (code === -12) return -112;
  if (code === -118) return -4;
  return -1;
}

export function applyWirePatches(): void {
  const req = createRequire(import.meta.url);
  const CM = req('node-zookeeper-client/lib/ConnectionManager.js') as { prototype: ConnectionManagerProto };
  const proto = CM.prototype;
  if (proto.__nodepoolWirePatched) return;
  proto.__nodepoolWirePatched = true;

  const drain = proto.onPacketQueueReadable;
  const corked = new WeakSet<Socket>();
  proto.onPacketQueueReadable = function patchedDrain(this: { socket?: Socket | null }) {
    const socket = this.socket;
    if (!socket || typeof socket.cork !== 'function') {
      drain.call(this);
      return;
    }
    // Corked until the event loop's check phase: every request issued while this turn of the
    // loop runs (the continuations of all the replies one socket read delivered, say) leaves in
    // one writev, and the server reads them in one go too. A syscall costs more than the wait.
    if (!corked.has(socket)) {
      corked.add(socket);
      socket.cork();
      setImmediate(() => {
        corked.delete(socket);
        socket.uncork();
      });
    }
    drain.call(this);
  };

  fastRecords(req('node-zookeeper-client/lib/jute/index.js') as Jute);

  const Exception = req('node-zookeeper-client/lib/Exception.js') as { create(code: number, path?: string): Error };
  const create = Exception.create;
  Exception.create = function createWithoutStack(code: number, path?: string): Error {
    const known = knownCode(code);
    const err = withoutStack(() => create(known, path));
    if (known !== code) err.message += ` (server code ${code})`;
    return err;
  };

  const onData = proto.onSocketData;
  proto.onSocketData = function patchedOnData(this: { pendingBuffer: Buffer | null }, chunk: Buffer) {
    let buffer = chunk;
    if (this.pendingBuffer) {
      buffer = Buffer.concat([this.pendingBuffer, chunk]);
      this.pendingBuffer = null;
    }
    let off = 0;
    while (buffer.length - off >= 4) {
      const size = buffer.readInt32BE(off);
      if (buffer.length - off < size + 4) break;
      this.pendingBuffer = null;
      onData.call(this, buffer.subarray(off, off + size + 4));
      off += size + 4;
    }
    this.pendingBuffer = off < buffer.length ? buffer.subarray(off) : null;
  };
}

interface FieldSpec {
  name: string;
  type: string;
}

type RecordCtor = { new (...args: unknown[]): RecordLike; prototype: RecordLike };

interface RecordLike {
  specification: FieldSpec[];
  chrootPath: string | undefined;
  deserialize(buffer: Buffer, offset: number): number;
  [field: string]: unknown;
}

interface Jute {
  protocol: Record<string, RecordCtor>;
  data: Record<string, RecordCtor>;
}

type Kind =
  | { k: 'int' } | { k: 'long' } | { k: 'buffer' } | { k: 'ustring' } | { k: 'boolean' }
  | { k: 'vector'; of: Kind } | { k: 'data'; name: string };

function kindOf(type: string): Kind {
  if (type === 'int' || type === 'long' || type === 'buffer' || type === 'ustring' || type === 'boolean') return { k: type };
  const vec = /^vector<([\w.]+)>$/.exec(type);
  if (vec) return { k: 'vector', of: kindOf(vec[1] as string) };
  const data = /^data\.(\w+)$/.exec(type);
  if (data) return { k: 'data', name: data[1] as string };
  throw new Error(`Unknown type: ${type}`);
}

function long8(src?: unknown): Buffer {
  const b = Buffer.allocUnsafe(8); // from the shared pool, unlike Buffer.alloc
  if (Buffer.isBuffer(src)) src.copy(b, 0, 0, 8);
  else b.fill(0);
  return b;
}

function fastRecords(jute: Jute): void {
  const read = (kind: Kind, buffer: Buffer, offset: number): [unknown, number] => {
    switch (kind.k) {
      case 'int':
        return [buffer.readInt32BE(offset), 4];
      case 'long': {
        const b = Buffer.allocUnsafe(8);
        buffer.copy(b, 0, offset, offset + 8);
        return [b, 8];
      }
      case 'buffer': {
        const len = buffer.readInt32BE(offset);
        if (len === -1) return [undefined, 4];
        const b = Buffer.allocUnsafe(len);
        buffer.copy(b, 0, offset + 4, offset + 4 + len);
        return [b, 4 + len];
      }
      case 'ustring': {
        const len = buffer.readInt32BE(offset);
        if (len === -1) return [undefined, 4];
        return [buffer.toString('utf8', offset + 4, offset + 4 + len), 4 + len];
      }
      case 'boolean':
        return [buffer.readUInt8(offset) === 1, 1];
      case 'vector': {
        let n = buffer.readInt32BE(offset);
        if (n === -1) return [undefined, 4];
        const out: unknown[] = [];
        let used = 4;
        while (n-- > 0) {
          const [v, r] = read(kind.of, buffer, offset + used);
          out.push(v);
          used += r;
        }
        return [out, used];
      }
      case 'data': {
        const rec = new (jute.data[kind.name] as RecordCtor)();
        return [rec, rec.deserialize(buffer, offset)];
      }
    }
  };
  for (const group of [jute.data, jute.protocol]) {
    for (const name of Object.keys(group)) {
      const Orig = group[name] as RecordCtor;
      const spec = new Orig().specification;
      const fields = spec.map((f) => ({ name: f.name, kind: kindOf(f.type) }));
      const Fast = function (this: RecordLike, ...args: unknown[]) {
        this.specification = spec;
        this.chrootPath = undefined;
        for (let i = 0; i < fields.length; i++) {
          const { name: field, kind } = fields[i] as { name: string; kind: Kind };
          const a = args[i];
          switch (kind.k) {
            case 'int': this[field] = typeof a === 'number' ? a : 0; break;
            case 'long': this[field] = long8(a); break;
            case 'buffer': this[field] = Buffer.isBuffer(a) ? Buffer.from(a) : undefined; break;
            case 'ustring': this[field] = typeof a === 'string' ? a : undefined; break;
            case 'boolean': this[field] = typeof a === 'boolean' ? a : false; break;
            case 'vector': this[field] = Array.isArray(a) ? a : undefined; break;
            case 'data': this[field] = a !== null && typeof a === 'object' ? a : new (jute.data[kind.name] as RecordCtor)(); break;
          }
        }
      } as unknown as RecordCtor;
      Fast.prototype = Object.create(Orig.prototype) as RecordLike;
      Object.defineProperty(Fast.prototype, 'constructor', { value: Fast, writable: true, configurable: true });
      Fast.prototype.deserialize = function (this: RecordLike, buffer: Buffer, offset: number): number {
        if (offset < 0 || offset >= buffer.length) throw new Error(`offset: ${offset} is out of buffer range.`);
        let used = 0;
        for (const f of fields) {
          const [v, r] = read(f.kind, buffer, offset + used);
          used += r;
          if (f.name === 'path' && this.chrootPath && typeof v === 'string') {
            this.path = v === this.chrootPath ? '/' : v.substring(this.chrootPath.length);
          } else {
            this[f.name] = v;
          }
        }
        return used;
      };
      group[name] = Fast;
    }
  }
}
