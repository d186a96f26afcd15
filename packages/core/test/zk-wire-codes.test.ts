// Error codes a ZooKeeper server may send that node-zookeeper-client never learnt: its
// Exception.create threw "Unknown code: -12" from inside the socket's data handler (an uncaught
// exception in a session-expiry test). With the wire patches each becomes an error it knows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { knownCode } from '../src/zk/wire-patches.js';
import '../src/zk/session.js';

interface RawException extends Error {
  getCode(): number;
}
const req = createRequire(import.meta.url);
const Exception = req('node-zookeeper-client/lib/Exception.js') as { create(code: number, path?: string): RawException };

test('codes the client library lacks become ones it handles; its own pass unchanged', () => {
  const unknownSession = Exception.create(-12);
  assert.equal(unknownSession.getCode(), -112, 'UNKNOWN_SESSION: the session is gone');
  assert.match(unknownSession.message, /SESSION_EXPIRED\[-112\] \(server code -12\)/);
  assert.equal(Exception.create(-118).getCode(), -4, 'SESSION_MOVED: reconnect');
  const other = Exception.create(-124, '/nodepool/nodes');
  assert.equal(other.getCode(), -1);
  assert.match(other.message, /@\/nodepool\/nodes \(server code -124\)$/);
  const noNode = Exception.create(-101, '/x');
  assert.equal(noNode.getCode(), -101);
  assert.doesNotMatch(noNode.message, /server code/);
  assert.deepEqual([0, -4, -101, -110, -112].map(knownCode), [0, -4, -101, -110, -112]);
});
