// Loaded into a daemon with `node --import <this file>` by the soak: every NODEPOOL_PROBE_MS
// (default 5 s) it appends one JSON line to $NODEPOOL_PROBE_FILE with the process's memory and
// its live libuv resources by type (timers, sockets, file requests ...), so a leak of any of
// them shows as a trend. With `--expose-gc`, every NODEPOOL_PROBE_GC_MS (default 60 s) one sample
// is taken right after a full garbage collection (`afterGc`): its heapUsed is exactly what the
// daemon keeps alive, where the other samples also count garbage not yet collected. Nothing else
// of the daemon is touched; the probe's timer is unref'd.
import { appendFileSync } from 'node:fs';

const file = process.env.NODEPOOL_PROBE_FILE;
if (file) {
  const every = Number(process.env.NODEPOOL_PROBE_MS ?? 5000);
  const gcEvery = Number(process.env.NODEPOOL_PROBE_GC_MS ?? 60000);
  const gc = typeof globalThis.gc === 'function' ? globalThis.gc : null;
  let lastGc = Date.now();
  const sample = () => {
    let afterGc = false;
    if (gc !== null && Date.now() - lastGc >= gcEvery) {
      gc();
      lastGc = Date.now();
      afterGc = true;
    }
    const m = process.memoryUsage();
    const resources = {};
    for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1;
    try {
      appendFileSync(file, `${JSON.stringify({ t: Date.now(), rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, afterGc, resources })}\n`);
    } catch {
      // the soak's directory is gone: nothing to report to
    }
  };
  setInterval(sample, every).unref();
}
