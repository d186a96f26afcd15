// An auditor of the ZooKeeper tree: a watch-fed view of every node and request (on a session of
// its own) that records transitions no correct launcher makes — a node brought back from
// `deleting`, a request rewritten after it was answered. Such a write comes from a daemon that
// still believes it holds a lock it lost (a session expiry), so this is how "held locks not
// assumed" is checked. Watches may coalesce quick changes (skipping states is fine); they never
// invent an order, so what is recorded here did happen.
import { NodeCache, RequestCache, type ZooKeeper } from '@nodepool-ts/core/zk';
import type { Node, NodeRequest } from '@nodepool-ts/core/model';

/** Node states after which only removal (or `deleted`) is legal. */
const NODE_TERMINAL: Record<string, readonly string[]> = {
  deleting: ['deleting', 'deleted'],
  deleted: ['deleted'],
  used: ['used', 'deleting', 'deleted'],
  failed: ['failed', 'deleting', 'deleted'],
  aborted: ['aborted', 'deleting', 'deleted'],
  'in-use': ['in-use', 'used', 'hold', 'deleting', 'deleted'],
};

export class Auditor {
  readonly violations: string[] = [];
  private readonly nodes: NodeCache;
  private readonly requests: RequestCache;
  private readonly lastNode = new Map<string, Readonly<Node>>();
  private readonly lastRequest = new Map<string, Readonly<NodeRequest>>();
  /** ids ever seen */
  readonly seenNodes = new Set<string>();
  /** every `image_id` a node was seen with (the upload it booted from) */
  readonly imageIds = new Set<string>();
  readonly seenRequests = new Set<string>();

  constructor(zk: ZooKeeper) {
    this.nodes = new NodeCache(zk);
    this.requests = new RequestCache(zk);
    this.nodes.on('change', (id: string, n: Readonly<Node> | null) => this.onNode(id, n));
    this.requests.on('change', (id: string, r: Readonly<NodeRequest> | null) => this.onRequest(id, r));
  }

  async start(): Promise<this> {
    await Promise.all([this.nodes.start(), this.requests.start()]);
    return this;
  }

  stop(): void {
    this.nodes.stop();
    this.requests.stop();
  }

  private onNode(id: string, n: Readonly<Node> | null): void {
    const prev = this.lastNode.get(id);
    if (n === null) {
      this.lastNode.delete(id);
      return;
    }
    this.seenNodes.add(id);
    if (n.image_id) this.imageIds.add(n.image_id);
    this.lastNode.set(id, n);
    if (!prev) return;
    const allowed = NODE_TERMINAL[prev.state];
    if (allowed && !allowed.includes(n.state)) {
      this.violations.push(`node ${id} went ${prev.state} -> ${n.state} (launcher ${n.launcher ?? '?'})`);
    }
    // (a retried launch gets a new server while `building`; watches may show it only once `ready`)
    if (prev.state === 'ready' && prev.external_id && n.external_id && prev.external_id !== n.external_id) {
      this.violations.push(`node ${id} changed server ${prev.external_id} -> ${n.external_id} in state ${n.state}`);
    }
  }

  private onRequest(id: string, r: Readonly<NodeRequest> | null): void {
    const prev = this.lastRequest.get(id);
    if (r === null) {
      this.lastRequest.delete(id);
      return;
    }
    this.seenRequests.add(id);
    this.lastRequest.set(id, r);
    if (!prev) return;
    if ((prev.state === 'fulfilled' || prev.state === 'failed') && r.state !== prev.state) {
      this.violations.push(`request ${id} went ${prev.state} -> ${r.state} after it was answered`);
    }
    if (prev.state === 'fulfilled' && r.state === 'fulfilled' && prev.nodes.join(',') !== r.nodes.join(',')) {
      this.violations.push(`request ${id} fulfilled twice: [${prev.nodes.join(',')}] then [${r.nodes.join(',')}]`);
    }
  }
}
