// The recorder's overflow: an append-only JSON-lines file in the state dir holding events the
// database could not take yet, read back front to back once it recovers. The read position is
// kept in a sidecar file written after each committed chunk, so a launcher that dies during an
// outage writes the rest at its next start; replaying a chunk twice is harmless (event uids).
//
// The caller serialises every method (one at a time); nothing here is safe to interleave.
import { appendFile, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseEventLine, type RecorderEvent } from './events.js';

export const SPILL_FILE = 'recorder-spill.jsonl';
const OFFSET_FILE = 'recorder-spill.offset';
const READ_SIZE = 1 << 20;

export interface SpillChunk {
  events: RecorderEvent[];
  /** lines that could not be parsed (truncated by a crash, edited): lost history */
  bad: number;
  /** offset to commit once `events` are written */
  nextOffset: number;
}

export class SpillFile {
  readonly path: string;
  private readonly offsetPath: string;
  private size = 0;
  private offset = 0;
  /** events appended and not yet committed, when known (unknown for a file left by an earlier run) */
  private knownCount = 0;

  constructor(private readonly dir: string, readonly maxBytes: number) {
    this.path = join(dir, SPILL_FILE);
    this.offsetPath = join(dir, OFFSET_FILE);
  }

  /** Pick up a spill file left by an earlier run. */
  async load(): Promise<void> {
    try {
      this.size = (await stat(this.path)).size;
    } catch {
      this.size = 0;
    }
    this.offset = 0;
    if (this.size > 0) {
      try {
        const n = Number((await readFile(this.offsetPath, 'utf8')).trim());
        if (Number.isInteger(n) && n >= 0 && n <= this.size) this.offset = n;
      } catch {
        // no offset yet: nothing of it was written
      }
    }
    if (this.size > 0 && this.offset >= this.size) await this.reset();
  }

  /** Unread bytes remain. */
  get pending(): boolean {
    return this.offset < this.size;
  }

  get bytes(): number {
    return this.size - this.offset;
  }

  /** Approximate count of unread events (exact for what this process appended). */
  get count(): number {
    return this.knownCount;
  }

  /**
   * Append events; what does not fit under maxBytes is returned as dropped (the oldest events
   * are kept, so the file stays a prefix of the history).
   */
  async append(events: readonly RecorderEvent[]): Promise<{ written: number; dropped: RecorderEvent[] }> {
    const lines: string[] = [];
    let bytes = 0;
    let i = 0;
    for (; i < events.length; i++) {
      const line = JSON.stringify(events[i]) + '\n';
      const len = Buffer.byteLength(line);
      if (this.size + bytes + len > this.maxBytes) break;
      lines.push(line);
      bytes += len;
    }
    if (lines.length > 0) {
      // events may overflow before start() created the state dir
      await mkdir(this.dir, { recursive: true });
      await appendFile(this.path, lines.join(''));
      this.size += bytes;
      this.knownCount += lines.length;
    }
    return { written: lines.length, dropped: events.slice(i) };
  }

  /** Read up to `max` events from the read position (without moving it; see commit). */
  async read(max: number): Promise<SpillChunk> {
    const events: RecorderEvent[] = [];
    let bad = 0;
    let pos = this.offset;
    const fh = await open(this.path, 'r');
    try {
      let want = READ_SIZE;
      while (events.length < max && pos < this.size) {
        const len = Math.min(want, this.size - pos);
        const buf = Buffer.alloc(len);
        const { bytesRead } = await fh.read(buf, 0, len, pos);
        if (bytesRead === 0) break;
        let start = 0;
        let progressed = false;
        while (events.length < max) {
          const nl = buf.indexOf(10, start);
          if (nl < 0 || nl >= bytesRead) break;
          const e = parseEventLine(buf.toString('utf8', start, nl));
          if (e !== null) events.push(e); else bad++;
          start = nl + 1;
          progressed = true;
        }
        if (!progressed) {
          if (pos + bytesRead >= this.size) {
            // a last line without newline: cut short by a crash
            bad++;
            pos = this.size;
            break;
          }
          want *= 2; // a line longer than the buffer
          continue;
        }
        pos += start;
      }
    } finally {
      await fh.close();
    }
    return { events, bad, nextOffset: pos };
  }

  /** The events up to `nextOffset` are in the database: move on, and drop the file once read. */
  async commit(nextOffset: number, count: number): Promise<void> {
    this.offset = Math.min(nextOffset, this.size);
    this.knownCount = Math.max(0, this.knownCount - count);
    if (this.offset >= this.size) {
      await this.reset();
      return;
    }
    await writeFile(this.offsetPath, String(this.offset));
  }

  /**
   * Put `events` in front of the unread part (stop() during an outage with a failed batch that
   * is older than everything spilled). Rewrites the file; only used at shutdown.
   */
  async prepend(events: readonly RecorderEvent[]): Promise<void> {
    if (events.length === 0) return;
    let rest = Buffer.alloc(0);
    if (this.pending) {
      const all = await readFile(this.path);
      rest = all.subarray(this.offset);
    }
    const head = Buffer.from(events.map((e) => JSON.stringify(e) + '\n').join(''));
    const tmp = `${this.path}.tmp`;
    await writeFile(tmp, Buffer.concat([head, rest]));
    await rename(tmp, this.path);
    await rm(this.offsetPath, { force: true });
    this.size = head.length + rest.length;
    this.offset = 0;
    this.knownCount += events.length;
  }

  /** Forget the file (fully written, or unreadable). */
  async reset(): Promise<void> {
    this.size = 0;
    this.offset = 0;
    this.knownCount = 0;
    await rm(this.path, { force: true });
    await rm(this.offsetPath, { force: true });
  }
}
