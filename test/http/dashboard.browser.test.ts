// The dashboard in a real browser (Debian's chromium, driven by
// playwright-core; no browser is ever downloaded) against a real
// `orderly-dispatch run examples/city --http`: the orders, no-op runs dimmed,
// a did-work run's output, the Fire button reaching the controller, the
// stream badge, and a token carried on every request.
import { cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scratch } from '../gascity/fixtures.js';
import { repoRoot } from '../helpers.js';
import { startController, waitFor, type Controller } from './support.js';

// What the functions evaluated in the page use of its globals (the tsconfig has no DOM lib).
declare const getComputedStyle: (e: unknown) => { opacity: string };
declare const window: { scrollTo(x: number, y: number): void };

const CHROMIUM = '/usr/bin/chromium';
// A developer without chromium skips with a reason; CI, which installs it, fails instead of passing silently.
const skip = !existsSync(CHROMIUM) && !process.env.CI;
if (skip) console.warn(`dashboard browser tests skipped: ${CHROMIUM} is missing (apt-get install chromium); under CI=true they fail instead`);

const fresh = scratch('http-dashboard');
/** Committed screenshots are rewritten only on request, so a test run does not dirty the checkout. */
const shoot = (file: string): string | undefined => (process.env.UPDATE_SCREENSHOTS === '1' || !existsSync(file) ? file : undefined);
const ORDERS_IN_EXAMPLE_CITY = 21;
const TOKEN = 'dashboard-test-token-0123456789';
/** How long a controller may take to exit on SIGTERM: its bodies here end within a second. */
const STOP_MS = 10_000;

async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: .ci/run must install Debian's chromium`);
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

/**
 * A copy of the example city (the run leaves the checkout as it was) at 50 % work, so both
 * outcomes show up at once; without a token unless `env` gives one.
 */
async function exampleCity(env: NodeJS.ProcessEnv = {}): Promise<{ c: Controller; stop: () => Promise<number | null> }> {
  const root = fresh();
  const city = join(root, 'city');
  cpSync(join(repoRoot, 'examples', 'city'), city, { recursive: true });
  const c = await startController([city, '--state', join(root, 'state'), '--http', '127.0.0.1:0'], { ...process.env, ORDERLY_DEMO_WORK_PERCENT: '50', ORDERLY_HTTP_TOKEN: '', ...env });
  // One SIGTERM: a second would meet the default handler and kill the controller mid-shutdown.
  let stopping: Promise<number | null> | undefined;
  return { c, stop: () => (stopping ??= stopWithin(c, STOP_MS)) };
}

/** SIGTERM, and the exit code; a controller still running after `ms` is killed and the test fails, rather than the file hanging. */
async function stopWithin(c: Controller, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
  const code = await Promise.race([c.stop(), late]);
  clearTimeout(timer);
  if (code !== 'late') return code;
  c.child.kill('SIGKILL');
  throw new Error(`the controller did not exit within ${ms} ms of SIGTERM while the dashboard was open (it keeps serving the page's keep-alive connection)`);
}

async function openPage(browser: Browser, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  page.setDefaultTimeout(20_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const res = await page.goto(url);
  expect(res?.status()).toBe(200);
  return { page, errors };
}

/** Past its fade-in: the opacity read is the one that stays. */
async function settled(locator: Locator): Promise<void> {
  await locator.evaluate((e) => Promise.all(e.getAnimations().map((a: { finished: Promise<unknown> }) => a.finished)));
}

describe.skipIf(skip)('the dashboard in chromium', () => {
  let browser: Browser;
  let c: Controller;
  let stop: () => Promise<number | null>;
  let page: Page;
  let errors: string[];

  beforeAll(async () => {
    ({ c, stop } = await exampleCity());
    browser = await launch();
    ({ page, errors } = await openPage(browser, c.url));
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    // The last test stops it with the page open; this stop is for a run that ended before it.
    if (c && !c.child.killed) expect(await stop()).toBe(0);
  });

  it("lists the example city's 21 orders and the controller's counters", async () => {
    await page.locator('[data-testid="order-row"]').nth(ORDERS_IN_EXAMPLE_CITY - 1).waitFor();
    expect(await page.locator('[data-testid="order-row"]').count()).toBe(ORDERS_IN_EXAMPLE_CITY);
    const gate = page.locator('[data-testid="order-row"][data-scoped-name="gate-sweep:rig:gastown"]');
    expect(await gate.locator('td').nth(1).textContent()).toBe('every 30s');
    await expect.poll(() => page.locator('#city').textContent()).toBe('demo-city');
    await expect.poll(() => page.locator('[data-testid="stream-status"]').textContent()).toBe('live');
    expect(await page.locator('[data-testid="outbox-depth"]').textContent()).toMatch(/^\d+$/);
    // 21 fires at start, 4 commits each for a tracking bead, against a few batched audit commits.
    await expect.poll(async () => Number((await page.locator('[data-testid="writes-avoided"]').textContent())!.replace(/,/g, ''))).toBeGreaterThan(40);
    expect(await page.locator('#avoided-box').getAttribute('title')).toContain("vs 4 commits per fire for Gas City's tracking bead");
  });

  it('shows a no-op run dimmed, with its time and order name only', async () => {
    const noOp = page.locator('[data-testid="run"][data-outcome="no-op"]').first();
    await noOp.waitFor();
    await settled(noOp);
    const look = await noOp.evaluate((e) => ({ opacity: Number(getComputedStyle(e).opacity), tag: e.tagName, classes: e.className, text: e.textContent }));
    expect(look.opacity).toBeLessThan(0.6);
    expect(look.tag).not.toBe('DETAILS');
    expect(look.classes).toBe('run no-op');
    expect(look.text).toMatch(/^\d\d:\d\d:\d\d\S+$/);
    expect(await noOp.locator('[data-testid="run-output"]').count()).toBe(0);
    await noOp.click();
    expect(await noOp.locator('[data-testid="run-output"]').count()).toBe(0);
  });

  it('expands a did-work run to its record and the output its body printed', async () => {
    const run = page.locator('[data-testid="run"][data-outcome="did-work"]').first();
    await run.waitFor();
    await settled(run);
    expect(await run.evaluate((e) => Number(getComputedStyle(e).opacity))).toBe(1);
    const fireId = (await run.getAttribute('data-fire-id'))!;
    const completed = c.events.find((e) => e.type === 'completed' && e.fireId === fireId) as { summary: string };
    expect(completed.summary).toMatch(/closed \d item\(s\)$/);
    await run.locator('summary').click();
    const output = run.locator('[data-testid="run-output"]');
    await expect.poll(() => output.textContent(), { timeout: 20_000 }).toContain(completed.summary);
    expect(await run.locator('dl').first().textContent()).toContain(fireId);
    const file = shoot(join(repoRoot, 'docs', 'dashboard-run.png'));
    if (file) await run.screenshot({ path: file, animations: 'disabled' });
  });

  it("fires gate-sweep from its button: the controller runs it as a manual fire and the run joins the timeline", async () => {
    const row = page.locator('[data-testid="order-row"][data-scoped-name="gate-sweep"]');
    // A run in progress would make the fire a "held" skip: wait for the start's own run to end.
    await waitFor('gate-sweep idle', async () => (['running', 'never'].includes((await row.locator('.st').textContent())!) ? undefined : true));
    await row.locator('[data-testid="fire-button"]').click();
    const result = row.locator('[data-testid="fire-result"]');
    await expect.poll(() => result.textContent(), { timeout: 20_000 }).toMatch(/^(did-work|no-op) in \d/);
    const fireId = (await result.getAttribute('data-fire-id'))!;
    expect(fireId).toBeTruthy();
    await page.locator(`[data-testid="run"][data-fire-id="${fireId}"]`).waitFor();
    expect(await page.locator(`[data-testid="run"][data-fire-id="${fireId}"]`).textContent()).toContain('gate-sweep');
    await waitFor('the completed event on stdout', async () => (c.events.some((e) => e.type === 'completed' && e.fireId === fireId) ? true : undefined));
    expect(c.events.find((e) => e.type === 'fired' && e.fireId === fireId)).toMatchObject({ scopedName: 'gate-sweep', trigger: 'manual' });
    expect(c.events.find((e) => e.type === 'completed' && e.fireId === fireId)).toMatchObject({ scopedName: 'gate-sweep', outcome: expect.stringMatching(/^(did-work|no-op)$/) });

    const file = shoot(join(repoRoot, 'docs', 'dashboard.png'));
    if (file) {
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: file, fullPage: true, animations: 'disabled' });
    }
    expect(errors).toEqual([]);
  });

  it('says disconnected when the controller goes away', async () => {
    expect(await stop()).toBe(0);
    await expect.poll(() => page.locator('[data-testid="stream-status"]').textContent(), { timeout: 10_000 }).toBe('disconnected');
    expect(errors).toEqual([]);
  });
});

describe.skipIf(skip)('the dashboard behind a token', () => {
  it('carries the token on every request and on the stream; without it the page gets no data', async () => {
    const { c, stop } = await exampleCity({ ORDERLY_HTTP_TOKEN: TOKEN });
    const browser = await launch();
    try {
      // The page holds no data: it loads, and every request it makes is refused.
      const bare = await browser.newPage();
      expect((await bare.goto(c.url))?.status()).toBe(200);
      await expect.poll(() => bare.locator('#alert').textContent()).toBe('unauthorized: open this page with ?token=<token>');
      expect(await bare.locator('[data-testid="order-row"]').count()).toBe(0);
      // #token= stays out of the server's logs and the browser's history of requests.
      const { page, errors } = await openPage(browser, `${c.url}/#token=${TOKEN}`);
      await page.locator('[data-testid="order-row"]').nth(ORDERS_IN_EXAMPLE_CITY - 1).waitFor();
      await expect.poll(() => page.locator('[data-testid="stream-status"]').textContent()).toBe('live');
      await page.locator('[data-testid="run"]').first().waitFor();
      const row = page.locator('[data-testid="order-row"][data-scoped-name="dolt-health"]');
      await waitFor('dolt-health idle', async () => (['running', 'never'].includes((await row.locator('.st').textContent())!) ? undefined : true));
      await row.locator('[data-testid="fire-button"]').click();
      await expect.poll(() => row.locator('[data-testid="fire-result"]').textContent(), { timeout: 20_000 }).toMatch(/^(did-work|no-op) in \d/);
      expect(await page.locator('#alert').textContent()).toBe('');
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      expect(await stop()).toBe(0);
    }
  }, 60_000);
});
