// Shared status polling for servers being booted or deleted. Every waiter of the provider is
// served by one poll cycle per interval: a few waiters are asked for one by one
// (GET /servers/{id}); many at once share one paginated listing (GET /servers/detail), so the API
// calls per node stay flat however many nodes boot together — what Nodepool's server-list cache
// achieved.

/** Raw Nova server JSON, or null when the server does not exist (any more). */
export type RawServer = Record<string, unknown>;

export interface PollerSource {
  getOne(id: string): Promise<RawServer | null>;
  listAll(): Promise<RawServer[]>;
}

interface Waiter {
  id: string;
  resolve: (s: RawServer | null) => void;
  reject: (err: unknown) => void;
}

/** Above this many distinct ids a cycle lists all servers instead of asking for each. */
const LIST_THRESHOLD = 3;

export class ServerPoller {
  private waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private stopped = false;

  constructor(private readonly source: PollerSource, private readonly intervalMs: number) {}

  /** The server's state as of the next poll cycle (at most one interval away). */
  next(id: string): Promise<RawServer | null> {
    if (this.stopped) return Promise.reject(new Error('poller stopped'));
    return new Promise((resolve, reject) => {
      this.waiters.push({ id, resolve, reject });
      this.schedule();
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const err = new Error('poller stopped');
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  private schedule(): void {
    if (this.timer || this.running || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.cycle();
    }, this.intervalMs);
  }

  private async cycle(): Promise<void> {
    const batch = this.waiters.splice(0);
    if (batch.length === 0) return;
    this.running = true;
    try {
      const ids = [...new Set(batch.map((w) => w.id))];
      if (ids.length <= LIST_THRESHOLD) {
        await Promise.all(ids.map(async (id) => {
          const mine = batch.filter((w) => w.id === id);
          try {
            const s = await this.source.getOne(id);
            for (const w of mine) w.resolve(s);
          } catch (err) {
            for (const w of mine) w.reject(err);
          }
        }));
      } else {
        try {
          const all = await this.source.listAll();
          const byId = new Map(all.map((s) => [String(s.id), s]));
          for (const w of batch) w.resolve(byId.get(w.id) ?? null);
        } catch (err) {
          for (const w of batch) w.reject(err);
        }
      }
    } finally {
      this.running = false;
      if (this.waiters.length > 0) this.schedule();
    }
  }
}
