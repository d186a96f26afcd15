// The ZooKeeper a benchmark talks to: $NODEPOOL_TEST_ZK when set, else a private one started
// with scripts/zk.sh in the benchmark's work dir (stop() stops only what was started here).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');

export interface BenchZooKeeper {
  host: string;
  /** the client port (the TLS one with `tls`) */
  port: string;
  /** the plain port for four-letter words (`mntr`): the client port unless TLS */
  monitorPort: string;
  /** PEM files of a TLS ZooKeeper (`zookeeper-tls`), else null */
  tls: { cert: string; key: string; ca: string } | null;
  /** the server's pid when this benchmark started it (for its CPU time), else null */
  pid: number | null;
  stop(): void;
}

/** ZooKeeper's `mntr` figures (four-letter word over a plain socket), e.g. zk_packets_received. */
export async function zkMonitor(host: string, port: string): Promise<Record<string, number>> {
  const { connect } = await import('node:net');
  return new Promise((resolvePromise) => {
    const sock = connect(Number(port), host, () => sock.end('mntr'));
    let text = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => { text += d; });
    sock.on('error', () => resolvePromise({}));
    sock.on('close', () => {
      const out: Record<string, number> = {};
      for (const line of text.split('\n')) {
        const [k, v] = line.split('\t');
        if (k && v !== undefined && /^-?\d+(\.\d+)?$/.test(v.trim())) out[k] = Number(v);
      }
      resolvePromise(out);
    });
  });
}

/** CPU seconds (user + system) a process has used so far, from /proc; NaN if it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of /proc/PID/stat (11 and 12 after the command)
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** `tls`: a private ZooKeeper that takes TLS clients only (scripts/zk.sh start-tls). */
export function benchZooKeeper(work: string, tls = false): BenchZooKeeper {
  let addr = tls ? '' : process.env.NODEPOOL_TEST_ZK ?? '';
  let started = false;
  if (!addr) {
    const r = spawnSync('bash', [join(root, 'scripts/zk.sh'), tls ? 'start-tls' : 'start', join(work, 'zk')], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`could not start ZooKeeper: ${r.stderr}`);
    addr = r.stdout.trim();
    started = true;
  }
  const [host = '127.0.0.1', port = '2181'] = addr.split(':');
  let pid: number | null = null;
  if (started) {
    try { pid = Number(readFileSync(join(work, 'zk', 'zk.pid'), 'utf8').trim()); } catch { pid = null; }
  }
  const t = join(work, 'zk', 'tls');
  return {
    host,
    port,
    monitorPort: tls ? readFileSync(join(work, 'zk', 'zk.port'), 'utf8').trim() : port,
    tls: tls ? { cert: join(t, 'client.pem'), key: join(t, 'client.key'), ca: join(t, 'ca.pem') } : null,
    pid,
    stop: () => {
      if (started) spawnSync('bash', [join(root, 'scripts/zk.sh'), 'stop', join(work, 'zk')]);
    },
  };
}
