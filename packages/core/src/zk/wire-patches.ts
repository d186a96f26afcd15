// Two throughput fixes to node-zookeeper-client's connection manager, applied once per process.
// Both keep its protocol handling intact; they only change how bytes move:
// - writes: the library sends each queued request with its own socket.write (one syscall each);
//   corking the socket until the loop's check phase sends a burst of requests in one writev.
// - reads: after each response in a chunk it re-concatenates the rest of the chunk with an empty
//   buffer and recurses, copying the remainder once per response (quadratic in a large burst, as
//   when `nodepool list` reads 10,000 nodes). Here the chunk is split into whole frames first and
//   the library is handed one exact frame at a time.
import { createRequire } from 'node:module';

interface Socket {
  cork(): void;
  uncork(): void;
}

interface ConnectionManagerProto {
  onPacketQueueReadable(this: { socket?: Socket | null }): void;
  onSocketData(this: { pendingBuffer: Buffer | null }, buffer: Buffer): void;
  __nodepoolWirePatched?: boolean;
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
