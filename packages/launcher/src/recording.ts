// Feeds the database recorder (history of nodes, requests and launch attempts). The hot path
// only calls the recorder's synchronous, O(1) methods; the recorder batches and writes later.
// Each launcher records the writes it makes itself; the changes nobody of ours writes (Zuul
// marking nodes in-use/used/hold, requests arriving and going away) are recorded once, by the
// stats election winner, from the watch-fed caches.
import { Recorder, type RecorderOptions } from '@nodepool-ts/core/db';
import { MIN_READY_REQUESTOR, type Node, type NodeRequest } from '@nodepool-ts/core/model';
import type { Launcher } from './launcher.js';
import type { StatsElection } from './election.js';

const EXTERNAL_NODE_STATES = new Set(['in-use', 'used', 'hold']);

export class LauncherRecording {
  readonly recorder: Recorder;
  private prevNodes = new Map<string, Readonly<Node>>();
  private prevRequests = new Map<string, Readonly<NodeRequest>>();
  /** `<hostname>-<pid>-`: the start of this launcher's pool worker ids */
  private readonly self: string;
  private readonly qualified = new Map<string, string>();

  constructor(private readonly launcher: Launcher, private readonly election: StatsElection, opts: Partial<RecorderOptions> = {}) {
    const cfg = launcher.config;
    this.self = `${launcher.hostname}-${process.pid}-`;
    this.recorder = new Recorder({
      databaseUri: cfg.databaseUri,
      stateDir: cfg.stateDir,
      retentionDays: cfg.historyRetentionDays,
      launcher: `${launcher.hostname}-${process.pid}`,
      log: launcher.logger('nodepool.Recorder'),
      reconcile: async () => ({ nodes: await launcher.zk.getNodes(), requests: await launcher.zk.getNodeRequests() }),
      ...opts,
    });
    const ev = launcher.events;
    ev.on('node-stored', (node, by, reason) => {
      const prev = node.id !== null ? launcher.nodeCache.get(node.id) ?? null : null;
      this.recorder.nodeChanged(prev, node, { launcher: this.who(by), reason });
    });
    ev.on('node-removed', (node, by) => this.recorder.nodeChanged(node, null, { launcher: this.who(by), reason: 'removed' }));
    ev.on('request-stored', (req, by, reason) => {
      const prev = req.id !== null ? launcher.requestCache.get(req.id) ?? null : null;
      this.recorder.requestChanged(prev, req, { launcher: this.who(by), reason });
    });
    ev.on('launch-attempt', (node, by, a) => this.recorder.launchAttempt({
      nodeId: node.id ?? '', provider: node.provider, pool: node.pool, label: node.type[0] ?? null,
      attempt: a.attempt, startedAt: a.startedAt, endedAt: a.endedAt, result: a.result, error: a.error, launcher: this.who(by),
    }));
    ev.on('node', (id, node) => this.observeNode(id, node));
    ev.on('request', (id, req) => this.observeRequest(id, req));
  }

  /**
   * The recorded author of a change: a pool worker's id names its launcher already; another
   * worker's bare name (DeletedNodeWorker, MinReady, CleanupWorker ...) gets this launcher's
   * prefix, so that history tells which of several launchers made the change.
   */
  private who(by: string): string {
    if (by.startsWith(this.self)) return by;
    // a handful of worker names, each recorded at every change they make: built once
    let full = this.qualified.get(by);
    if (full === undefined) {
      full = this.self + by;
      this.qualified.set(by, full);
    }
    return full;
  }

  /** Starts the recorder; an unreachable database is retried in the background. */
  async start(): Promise<void> {
    await this.recorder.start();
  }

  stop(): Promise<void> {
    return this.recorder.stop();
  }

  /**
   * Every node change the watch shows. The stats-election winner records the client's changes
   * (in-use, used, hold); every launcher notes them and the node's removal, so that its own next
   * write of the node is recorded as following them. A launcher's own writes are recorded by the
   * writer itself (the cache may show them before or after that), never noted from here.
   */
  private observeNode(id: string, node: Readonly<Node> | null): void {
    const prev = this.prevNodes.get(id) ?? null;
    if (node) this.prevNodes.set(id, node);
    else this.prevNodes.delete(id);
    if (node === null) {
      this.recorder.noteNodeState(id, null);
      return;
    }
    if (!EXTERNAL_NODE_STATES.has(node.state) || prev?.state === node.state) return;
    if (this.election.isLeader) this.recorder.nodeChanged(prev, node, { launcher: null, reason: 'changed by a client' });
    else this.recorder.noteNodeState(id, node.state);
  }

  private observeRequest(id: string, req: Readonly<NodeRequest> | null): void {
    const prev = this.prevRequests.get(id) ?? null;
    if (req) this.prevRequests.set(id, req);
    else this.prevRequests.delete(id);
    if (!this.election.isLeader) {
      if (req === null) this.recorder.noteRequestState(id, null);
      return;
    }
    if (prev === null && req !== null && req.requestor !== MIN_READY_REQUESTOR) {
      this.recorder.requestChanged(null, req, { launcher: null, reason: 'submitted' });
    } else if (req === null && prev !== null) {
      this.recorder.requestChanged(prev, null, { launcher: null, reason: 'deleted by its requestor' });
    }
  }
}
