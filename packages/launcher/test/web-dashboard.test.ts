// The dashboard in a real headless Chromium (Debian's /usr/bin/chromium via playwright-core):
// what a person sees — label and provider counts against min-ready and max-servers, the request
// queue, failures, leases, history charts from the database — updating live (server-sent
// events) when nodes change state, without a reload. Leaves a screenshot in
// test-results/dashboard.png; UPDATE_DOCS_SCREENSHOT=1 also refreshes docs/dashboard.png (< 300 KB).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { newNodeRequest } from '@nodepool-ts/core/model';
import { http, jsonBody, launcherWeb, waitFor, type TestEnv } from './web-helpers.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ROOT = resolve(import.meta.dirname, '../../..');
// Without these Chromium tries to reach Google's services and hangs on a machine without network.
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic', '--disable-dev-shm-usage'];

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

function config(env: TestEnv): string {
  return `${env.zkYaml}
labels:
  - name: fake-label
    min-ready: 1
  - name: big-label
    min-ready: 0
  - name: broken-label
    min-ready: 0
providers:
  - name: fake-provider
    driver: fake
    rate: 0.001
    faults:
      boot-delay: 1
    cloud-images:
      - name: fake-image
        username: zuul
    pools:
      - name: main
        max-servers: 8
        labels:
          - name: fake-label
            cloud-image: fake-image
            min-ram: 8192
          - name: big-label
            cloud-image: fake-image
            min-ram: 8192
  - name: broken-provider
    driver: fake
    rate: 0.001
    launch-retries: 1
    launch-circuit-breaker:
      failures: 1
      cooldown: 600
    faults:
      error-rate: 1.0
    cloud-images:
      - name: fake-image
    pools:
      - name: main
        max-servers: 4
        labels:
          - name: broken-label
            cloud-image: fake-image
            min-ram: 8192
`;
}

async function cell(page: Page, row: string, col: string): Promise<string> {
  return (await page.locator(`${row} td[data-col="${col}"]`).textContent())?.trim() ?? '';
}

async function until(page: Page, what: string, fn: () => Promise<boolean>, ms = 20_000): Promise<void> {
  await waitFor(what, async () => (await fn()) || null, ms, 100);
}

test('the dashboard renders the launcher\'s state and follows it live in Chromium', { skip: !existsSync(CHROMIUM) && !process.env.CI ? `${CHROMIUM} not installed (scripts/install-deps.sh all)` : false }, async () => {
  const lw = await launcherWeb(config, { dashboardPushMs: 100, leaseLimits: { minTtl: 1 } });
  cleanups.push(() => lw.close());
  const userDataDir = mkdtempSync(join(tmpdir(), 'np-chromium-'));
  const ctx: BrowserContext = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1440, height: 1200 }, timeout: 60_000,
  });
  cleanups.push(async () => {
    await ctx.close();
    rmSync(userDataDir, { recursive: true, force: true });
  });
  const page = ctx.pages()[0] ?? await ctx.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

  // a request that fails (broken provider) so the failures panel has something
  const broken = await lw.zk.submitNodeRequest(newNodeRequest({ node_types: ['broken-label'], requestor: 'dashboard-test' }), '200');
  await waitFor('broken request failed', async () => (await lw.zk.getNodeRequest(broken))?.state === 'failed', 20_000, 100);

  await page.goto(`${lw.url}/`);
  assert.equal(new URL(page.url()).pathname, '/dashboard', '/ redirects to the dashboard');
  await page.locator('#live.ok').waitFor({ timeout: 20_000 });
  assert.equal(await page.title(), 'nodepool-ts dashboard');
  const label = 'tr[data-label="fake-label"]';
  await until(page, 'min-ready node shown ready', async () => (await cell(page, label, 'ready')) === '1');
  assert.equal(await cell(page, label, 'min_ready'), '1');
  assert.equal(await cell(page, 'tr[data-provider="fake-provider"]', 'max_servers'), '8');
  assert.equal(await cell(page, 'tr[data-provider="broken-provider"]', 'max_servers'), '4');
  // its launch failed: the launch circuit breaker suspends the provider's launches, and says so
  assert.equal((await page.locator('tr[data-provider="broken-provider"] [data-col="launches"]').textContent())?.trim(), 'launches suspended');
  assert.equal(await page.locator('tr[data-provider="fake-provider"] [data-col="launches"]').count(), 0);
  assert.equal(await page.locator('#zk').textContent(), 'ZooKeeper connected');
  await until(page, 'failure listed', async () => (await page.locator('#failures tr[data-failure="error.status"]').count()) > 0);
  assert.ok((await page.locator('#failures').textContent())?.includes('broken-provider'));

  // from here on the page must update itself: a marker proves there is no reload
  await page.evaluate(() => { (globalThis as unknown as { marker: number }).marker = 42; });

  // a request shows up in the queue with its age, and goes when its requestor deletes it
  const queued = await lw.zk.submitNodeRequest(newNodeRequest({ node_types: ['big-label', 'big-label'], requestor: 'zuul.example.org' }), '200');
  const qrow = page.locator(`#requests tr[data-request="${queued}"]`);
  await qrow.waitFor({ timeout: 10_000 });
  assert.ok((await qrow.textContent())?.includes('big-label, big-label'));
  assert.match((await qrow.locator('td.age').textContent()) ?? '', /^\d\d:\d\d:\d\d$/);
  await waitFor('queued request fulfilled', async () => (await lw.zk.getNodeRequest(queued))?.state === 'fulfilled', 20_000, 100);
  await lw.zk.deleteNodeRequest(queued);
  await qrow.waitFor({ state: 'detached', timeout: 10_000 });

  // a lease takes a node in use: the label row, the totals and the lease panel follow
  const token = await lw.launcher.webApp?.tokens?.create('dash', {});
  assert.ok(token);
  const r = await http(`${lw.url}/api/v1/leases`, jsonBody('POST', { labels: { 'fake-label': 1 }, ttl: 600, wait: 20 }, token.token));
  assert.equal(r.status, 201, r.text);
  const leaseId = (r.json() as { id: string }).id;
  await until(page, 'node in use on the page', async () => (await cell(page, label, 'in_use')) === '1');
  await until(page, 'min-ready refilled on the page', async () => (await cell(page, label, 'ready')) === '1');
  await page.locator(`#leases tr[data-lease="${leaseId}"]`).waitFor({ timeout: 10_000 });
  assert.ok((await page.locator(`#leases tr[data-lease="${leaseId}"]`).textContent())?.includes('dash'));
  assert.equal((await page.locator('.total[data-total="in_use"] .n').textContent())?.trim(), '1');
  assert.equal(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker), 42, 'no reload happened');

  // history comes from the database the recorder fills: ask for the last hour until it has points
  await until(page, 'launch-time history drawn', async () => {
    await page.locator('.windows button[data-hours="1"]').click();
    await page.waitForTimeout(300);
    return Number(await page.locator('#chart-launch').getAttribute('data-points')) > 0;
  }, 30_000);
  assert.ok(Number(await page.locator('#chart-inuse').getAttribute('data-points')) > 0);
  assert.equal(await page.locator('#chart-launch svg path.avg').count(), 1);

  // the picture for people (and the README)
  mkdirSync(join(ROOT, 'test-results'), { recursive: true });
  const shot = join(ROOT, 'test-results', 'dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  const size = statSync(shot).size;
  assert.ok(size > 10_000, 'a real screenshot');
  // docs/dashboard.png (shown by the docs) is refreshed on request, so test runs leave the tree clean
  const docShot = join(ROOT, 'docs', 'dashboard.png');
  if (size < 300 * 1024 && (!existsSync(docShot) || process.env.UPDATE_DOCS_SCREENSHOT === '1')) {
    mkdirSync(join(ROOT, 'docs'), { recursive: true });
    copyFileSync(shot, docShot);
  }

  // returning the lease: in-use back to 0, live
  await http(`${lw.url}/api/v1/leases/${leaseId}`, { method: 'DELETE', headers: { Authorization: `Bearer ${token.token}` } });
  await until(page, 'node no longer in use on the page', async () => (await cell(page, label, 'in_use')) === '0');
  await page.locator(`#leases tr[data-lease="${leaseId}"]`).waitFor({ state: 'detached', timeout: 10_000 });
  assert.deepEqual(errors, [], 'no script errors in the page');
});
