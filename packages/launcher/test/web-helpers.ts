// Helpers for the web tests: a launcher with its web app on a free port, a web app over a bare
// ZooKeeper view (no PoolWorkers: requests stay `requested`, as in Nodepool's samples), HTTP.
import { EventEmitter } from 'node:events';
import { loadConfig, type Config } from '@nodepool-ts/core/config';
import { getLogger } from '@nodepool-ts/core/log';
import { NodeCache, RequestCache, type ZooKeeper } from '@nodepool-ts/core/zk';
import { Launcher, LauncherEvents, WebApp, type WebAppHost, type WebAppOptions } from '@nodepool-ts/launcher';
import { connectZk, fakeConfig, testEnv, type TestEnv } from '../../../test/helpers/harness.js';

export { connectZk, fakeConfig, testEnv, waitFor, type TestEnv } from '../../../test/helpers/harness.js';

export const SAMPLES = '/work/shared/docs/nodepool-output-samples';

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  json: () => unknown;
}

export async function http(url: string, init: RequestInit = {}): Promise<HttpResult> {
  const r = await fetch(url, init);
  const text = await r.text();
  return { status: r.status, headers: r.headers, text, json: () => JSON.parse(text) as unknown };
}

export function jsonBody(method: string, body: unknown, token?: string, extra: Record<string, string> = {}): RequestInit {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', ...extra };
  if (token) headers.Authorization = `Bearer ${token}`;
  return { method, headers, body: typeof body === 'string' ? body : JSON.stringify(body) };
}

/** A web app over a plain ZooKeeper view: no launcher workers touch the tree. */
export class BareHost implements WebAppHost {
  readonly events = new LauncherEvents();
  readonly election = Object.assign(new EventEmitter(), { isLeader: false });
  readonly nodeCache: NodeCache;
  readonly requestCache: RequestCache;
  readonly hostname = 'bare';

  constructor(readonly zk: ZooKeeper, public config: Config) {
    this.nodeCache = new NodeCache(zk);
    this.requestCache = new RequestCache(zk);
    this.nodeCache.on('change', (id: string, n) => this.events.emit('node', id, n));
    this.requestCache.on('change', (id: string, r) => this.events.emit('request', id, r));
  }

  async start(): Promise<void> {
    await Promise.all([this.nodeCache.start(), this.requestCache.start()]);
  }

  stop(): void {
    this.nodeCache.stop();
    this.requestCache.stop();
  }

  logger(name: string) {
    return getLogger(name);
  }

  supportedLabels(): string[] {
    const labels = new Set<string>();
    for (const p of this.config.providers.values()) for (const pool of p.pools) for (const l of pool.labels) labels.add(l.name);
    return [...labels].sort();
  }
}

export interface BareWeb {
  env: TestEnv;
  zk: ZooKeeper;
  host: BareHost;
  web: WebApp;
  url: string;
  close(): Promise<void>;
}

export async function bareWeb(yaml: (env: TestEnv) => string, opts: WebAppOptions = {}): Promise<BareWeb> {
  const env = testEnv();
  const file = env.write('nodepool.yaml', yaml(env));
  const config = await loadConfig(file);
  const zk = await connectZk(env);
  const host = new BareHost(zk, config);
  await host.start();
  const web = new WebApp(host, null, { port: 0, ...opts });
  await web.start();
  return {
    env, zk, host, web, url: web.url,
    async close() {
      await web.stop();
      host.stop();
      await zk.close();
      env.cleanup();
    },
  };
}

export interface LauncherWeb {
  env: TestEnv;
  zk: ZooKeeper;
  launcher: Launcher;
  url: string;
  config: string;
  close(): Promise<void>;
}

export async function launcherWeb(yaml: (env: TestEnv) => string, opts: WebAppOptions = {}, hostname = 'webtest'): Promise<LauncherWeb> {
  const env = testEnv();
  const config = env.write('nodepool.yaml', yaml(env));
  const zk = await connectZk(env);
  const launcher = new Launcher({ configFile: config, hostname, watchIntervalMs: 0, webapp: { port: 0, ...opts } });
  await launcher.start();
  const url = launcher.webApp?.url ?? '';
  return {
    env, zk, launcher, url, config,
    async close() {
      await launcher.stop();
      await zk.close();
      env.cleanup();
    },
  };
}

/** A fake-provider config with fast leases for tests. */
export function leaseConfig(env: TestEnv, labels: { name: string; minReady?: number }[] = [{ name: 'fake-label' }]): string {
  return fakeConfig(env, { labels });
}
