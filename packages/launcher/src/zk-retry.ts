// A dropped connection is not a lost session: ZooKeeper keeps the session (and every lock and
// ephemeral znode in it) while the client reconnects to another member within the session
// timeout. Only the requests in flight on the dropped connection fail (ECONNLOSS), applied or
// not; requests issued meanwhile wait for the new connection. A launcher that gave up on such a
// failure while holding a lock kept the lock for the life of its session: a request nobody
// answered, a node nobody deleted (seen with one ensemble member stopped).
import { ZkError, type ZooKeeper } from '@nodepool-ts/core/zk';

/** Attempts of one operation across connection losses before the error is passed on. */
const ATTEMPTS = 5;

export function isConnectionLoss(err: unknown): boolean {
  return err instanceof ZkError && err.code === 'ECONNLOSS';
}

/**
 * Run an idempotent ZooKeeper operation (a read, an unconditional write of a znode we hold the
 * lock of) again after a connection loss, once the connection is back in the same session and
 * `stillOurs()` (e.g. the lock is still held) allows it. A lost session, or any other error,
 * is passed on.
 */
export async function retryConnectionLoss<T>(zk: ZooKeeper, fn: () => Promise<T>, stillOurs: () => boolean = () => true): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const gen = zk.sessionGeneration;
    try {
      return await fn();
    } catch (err) {
      if (!isConnectionLoss(err) || attempt >= ATTEMPTS || zk.isClosed) throw err;
      const back = await zk.waitConnected(zk.sessionTimeout + 5_000).catch(() => false);
      if (!back || zk.sessionGeneration !== gen || !stillOurs()) throw err;
    }
  }
}
