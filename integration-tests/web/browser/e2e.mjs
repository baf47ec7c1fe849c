// Browser end to end: log in through the portal, see the nodes, run a task, watch its output arrive,
// log out. Driven by test_browser.py, which starts the stack and passes everything in the environment.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} not set`); return v; };
const APP = env('E2E_APP_URL');          // https://app.xtask.test:PORT/web/
const PORTAL = env('E2E_PORTAL_PREFIX');  // https://auth.xtask.test:PORT/
const USER = env('E2E_USER'), PASS = env('E2E_PASS'), NODE = env('E2E_NODE'), TASK = env('E2E_TASK');
const SHOT = env('E2E_SCREENSHOT');
const RULES = env('E2E_RESOLVER_RULES');  // MAP *.xtask.test 127.0.0.1

const step = (s) => console.log(`step: ${s}`);
const profile = mkdtempSync(join(tmpdir(), 'xt-chromium-'));
// a fresh profile (--user-data-dir) per run: playwright takes it as launchPersistentContext's first argument
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         `--host-resolver-rules=${RULES}`],
  ignoreHTTPSErrors: true,
  viewport: { width: 1360, height: 900 },
});
let failed = false;
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));

  step('open the GUI: forward-auth sends us to the portal');
  await page.goto(APP);
  await page.waitForURL((u) => u.href.startsWith(PORTAL), { timeout: 10000 });

  step('log in');
  await page.fill('#username', USER);
  await page.fill('#password', PASS);
  await Promise.all([page.waitForURL((u) => u.href.startsWith(APP), { timeout: 15000 }),
                     page.click('button[type=submit]')]);

  const proto = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
  if (proto !== 'h2') throw new Error(`the page came over ${proto}, not HTTP/2`);
  step('the page knows who we are and shows the live node (over h2)');
  await page.waitForFunction((u) => document.querySelector('#user')?.textContent === u, USER, { timeout: 10000 });
  await page.waitForSelector(`#nodes td.node-id:text-is("${NODE}")`, { timeout: 15000 });
  await page.waitForSelector('#services .state-READY', { timeout: 10000 });

  step('run a task from the form');
  await page.fill('#run-node', NODE);
  await page.fill('#run-task', TASK);
  await page.click('#run-submit');
  await page.waitForFunction(() => (document.querySelector('#task-id')?.textContent || '').length > 0, null, { timeout: 10000 });
  const taskId = await page.textContent('#task-id');
  step(`task ${taskId} submitted; waiting for its output`);
  await page.waitForFunction(() => document.querySelectorAll('#tasks pre.out span').length >= 3, null, { timeout: 15000 });
  await page.waitForSelector('#tasks .st.ok', { timeout: 15000 });
  await page.waitForSelector('#results li', { timeout: 10000 });
  const lines = await page.$$eval('#tasks pre.out span', (els) => els.map((e) => e.textContent));
  console.log(`output: ${JSON.stringify(lines)}`);
  if (page.url().startsWith(APP) === false) throw new Error(`the page navigated away: ${page.url()}`);
  await page.screenshot({ path: SHOT, fullPage: true });
  step(`screenshot ${SHOT}`);

  step('log out');
  await Promise.all([page.waitForURL((u) => u.href.startsWith(PORTAL), { timeout: 10000 }), page.click('#logout')]);
  // a page that loaded cleanly: no CSP violation, no failed fetch, no Datastar error
  if (errors.length) throw new Error(`console errors: ${JSON.stringify(errors)}`);
  console.log('E2E OK');
} catch (e) {
  failed = true;
  console.error(`E2E FAILED: ${e.stack || e}`);
  try {
    const pages = ctx.pages();
    if (pages.length) {
      await pages[0].screenshot({ path: SHOT.replace(/\.png$/, '-failure.png'), fullPage: true });
      console.error(`at ${pages[0].url()}`);
    }
  } catch { /* best effort */ }
} finally {
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
