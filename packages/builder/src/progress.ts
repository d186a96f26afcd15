// What a running disk-image-create is doing, read from its output as it streams by: the phase
// (`root.d`, `install.d`, ...), the hook script and the element it belongs to, and the last lines
// a human would look at when it fails. Only a handful of line shapes are examined, so scanning
// costs next to nothing next to writing the same bytes to the log.
import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface DibProgress {
  /** DIB phase: a hook directory (`root.d`, `install.d`, ...) or `convert` while qemu-img runs */
  phase: string | null;
  /** the hook script running now (or last run), e.g. `08-debootstrap` */
  script: string | null;
  /** the element that script comes from, once known */
  element: string | null;
  /** a short human line describing the current step */
  step: string | null;
  /** a script started but did not report `completed` (the failing one, after a failure) */
  running: boolean;
  /** DIB printed "Build completed successfully" */
  completed: boolean;
  /** lines seen so far */
  lines: number;
  /** the last few lines that are not shell trace (`+ ...`): a failure's reason is in there */
  tail: string[];
  /** ms since the epoch when the run started */
  startedAt: number;
}

const TAIL_LINES = 12;
/** outfilter.py's `YYYY-MM-DD HH:MM:SS.mmm | ` prefix */
const TIMESTAMP = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| /;

export class DibProgressParser {
  private partial = '';
  private phase: string | null = null;
  private script: string | null = null;
  private element: string | null = null;
  private step: string | null = null;
  private running = false;
  private completed = false;
  private lines = 0;
  private readonly tail: string[] = [];
  private elementsPath: string[] = [];
  /** `<phase>/<script>` → element, filled asynchronously once DIB names its elements */
  private readonly owners = new Map<string, string>();
  private scanning: Promise<void> = Promise.resolve();

  constructor(private readonly startedAt: number = Date.now()) {}

  /** Feed raw output; returns true when the phase/script/step changed. */
  feed(text: string): boolean {
    if (text === '') return false;
    let changed = false;
    let start = 0;
    let nl = text.indexOf('\n');
    if (nl < 0) {
      this.partial += text;
      return false;
    }
    while (nl >= 0) {
      const line = this.partial + text.slice(start, nl);
      this.partial = '';
      if (this.line(line)) changed = true;
      start = nl + 1;
      nl = text.indexOf('\n', start);
    }
    this.partial = text.slice(start);
    return changed;
  }

  /** Flush a last line without newline. */
  end(): boolean {
    if (this.partial === '') return false;
    const l = this.partial;
    this.partial = '';
    return this.line(l);
  }

  /** Resolves once the hook scripts of the announced elements are mapped to them. */
  elementsKnown(): Promise<void> {
    return this.scanning;
  }

  snapshot(): DibProgress {
    return {
      phase: this.phase, script: this.script, element: this.element, step: this.step,
      running: this.running, completed: this.completed, lines: this.lines, tail: [...this.tail],
      startedAt: this.startedAt,
    };
  }

  private line(raw: string): boolean {
    this.lines++;
    const line = raw.replace(TIMESTAMP, '').replace(/\r$/, '');
    // shell trace of `-x`: the bulk of the output, never a step
    if (line.startsWith('+')) return false;
    if (line.trim() !== '' && !line.startsWith('dib-run-parts Sourcing')) {
      this.tail.push(line);
      if (this.tail.length > TAIL_LINES) this.tail.shift();
    }
    if (line.startsWith('dib-run-parts ')) return this.runParts(line.slice('dib-run-parts '.length));
    if (line.startsWith('Running hooks from ')) {
      this.phase = basename(line.slice('Running hooks from '.length).trim());
      this.script = null;
      this.element = null;
      this.step = `${this.phase}`;
      return true;
    }
    if (line.startsWith('Expanded element dependencies to: ')) {
      const elements = line.slice('Expanded element dependencies to: '.length).trim().split(/\s+/);
      this.scanning = this.learnOwners(elements).catch(() => undefined);
      this.step = `elements: ${elements.join(' ')}`;
      return true;
    }
    if (line.includes('ELEMENTS_PATH is: ')) {
      const m = /ELEMENTS_PATH is: (\S+)/.exec(line);
      if (m?.[1] !== undefined) this.elementsPath = m[1].split(':').filter((d) => d !== '');
      return false;
    }
    if (line.startsWith('Converting image using qemu-img convert')) {
      this.phase = 'convert';
      this.script = null;
      this.element = null;
      this.step = 'converting image (qemu-img convert)';
      return true;
    }
    if (line.startsWith('Build completed successfully')) {
      this.completed = true;
      this.step = 'build completed';
      return true;
    }
    return false;
  }

  private runParts(rest: string): boolean {
    if (rest.startsWith('Running ')) {
      const path = rest.slice('Running '.length).trim();
      this.phase = basename(dirname(path));
      this.script = basename(path);
      this.element = this.owners.get(`${this.phase}/${this.script}`) ?? null;
      this.running = true;
      this.step = `${this.phase}/${this.script}${this.element ? ` (${this.element})` : ''}`;
      return true;
    }
    if (rest.endsWith(' completed') && this.script !== null && rest === `${this.script} completed`) {
      this.running = false;
      return false;
    }
    return false;
  }

  /** Map hook scripts to their elements by looking into ELEMENTS_PATH (a few hundred readdirs). */
  private async learnOwners(elements: string[]): Promise<void> {
    for (const dir of this.elementsPath) {
      for (const element of elements) {
        let phases: string[];
        try {
          phases = (await readdir(join(dir, element), { withFileTypes: true }))
            .filter((e) => e.isDirectory() && e.name.endsWith('.d')).map((e) => e.name);
        } catch {
          continue;
        }
        for (const phase of phases) {
          let scripts: string[];
          try {
            scripts = await readdir(join(dir, element, phase));
          } catch {
            continue;
          }
          for (const s of scripts) {
            const key = `${phase}/${s}`;
            if (!this.owners.has(key)) this.owners.set(key, element);
          }
        }
      }
    }
    if (this.script !== null && this.phase !== null && this.element === null) {
      this.element = this.owners.get(`${this.phase}/${this.script}`) ?? null;
    }
  }
}

/** One line for people: why a DIB run failed, from its result and what it printed last. */
export function failureReason(p: DibProgress, rc: number, extra: { timedOut: boolean; timeoutS: number; execError: string | null }): string {
  if (extra.execError !== null) return extra.execError;
  if (extra.timedOut) {
    const where = p.step !== null ? ` during ${p.step}` : '';
    return `build-timeout of ${extra.timeoutS}s exceeded${where}; disk-image-create was killed`;
  }
  const interesting = [...p.tail].reverse().find((l) => /\b(ERROR|Error|error|FAILED|failed|No space left|not found|cannot|Cannot)\b/.test(l)
    && !l.startsWith('dib-run-parts') && !/^Exit code:/.test(l));
  const last = interesting ?? [...p.tail].reverse().find((l) => !l.startsWith('dib-run-parts')) ?? null;
  const detail = last !== null ? `: ${last.trim()}` : '';
  if (p.running && p.script !== null) {
    const owner = p.element !== null ? ` of element ${p.element}` : '';
    return `${p.phase ?? '?'}/${p.script}${owner} failed (disk-image-create exit code ${rc})${detail}`;
  }
  return `disk-image-create exited with code ${rc}${detail}`;
}
