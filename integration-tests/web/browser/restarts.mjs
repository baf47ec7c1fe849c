// The open page across real restarts (the stack under xtask-supervisor): web, auth, NATS.
// Driven by test_browser_stack.py, which starts the stack and passes everything in the environment.
// Prints `figure: NAME MS` lines that the test (and bench/web/gui.sh) collect.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} not set`); return v; };
const APP = env('E2E_APP_URL');        // http://xtask.localhost:PORT/web/
const COOKIE = env('E2E_COOKIE');      // a session from the portal's API (the login is test_browser's part)
const NODE = env('E2E_NODE');
const USER = env('E2E_USER'), PASS = env('E2E_PASS');
const SUP = env('E2E_SUPERVISOR');     // xtask-supervisor (its control socket comes from the environment)
const SHOT = env('E2E_SCREENSHOT');
const ROUNDS = Number(process.env.E2E_ROUNDS || '1');

const step = (s) => console.log(`step: ${s}`);
const figure = (name, ms) => console.log(`figure: ${name} ${Math.round(ms)}`);
const sup = (...args) => execFileSync(SUP, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60000 }).toString();

async function webPid(page) {
  return page.evaluate(() => {
    for (const tr of document.querySelectorAll('#services tr')) {
      const td = tr.querySelectorAll('td');
      if (td.length > 2 && td[0].textContent === 'web') return td[2].textContent;
    }
    return '';
  });
}

async function runAndWatch(page, task, lines) {
  await page.fill('#run-node', NODE);
  await page.fill('#run-task', task);
  await page.fill('#run-args', '');
  await page.click('#run-submit');
  await page.waitForFunction((w) => (document.querySelector('#task-note')?.textContent || '').startsWith(w),
    'started', { timeout: 10000 });
  const id = await page.textContent('#task-id');
  await page.waitForFunction(([i, n]) => document.querySelectorAll(`#task-${i} pre.out span`).length >= n,
    [id, lines], { timeout: 20000 });
  return id;
}

const profile = mkdtempSync(join(tmpdir(), 'xt-chromium-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
});
let failed = false;
try {
  await ctx.addCookies([{ name: 'authelia_session', value: COOKIE, url: APP.replace(/\/web\/$/, '/') }]);
  const page = ctx.pages()[0] || await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  step('open the page with a session');
  const t0 = Date.now();
  await page.goto(APP);
  await page.waitForSelector('#conn[data-state="live"]', { timeout: 15000 });
  const paint = await page.evaluate(() => {
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    return { fcp: fcp ? fcp.startTime : -1, live: window.xtaskStream.liveSince - performance.timeOrigin };
  });
  figure('first_paint_ms', paint.fcp);
  figure('first_live_ms', paint.live);
  // anchor: the same page fetched by the page's fetch (no rendering, no stream)
  for (let i = 0; i < 3; i++) {
    figure('page_get_ms', await page.evaluate(async (u) => {
      const ta = performance.now();
      await (await fetch(u, { cache: 'no-store' })).text();
      return performance.now() - ta;
    }, APP));
  }
  await page.waitForSelector(`#nodes td.node-id:text-is("${NODE}")`, { timeout: 15000 });

  for (let round = 1; round <= ROUNDS; round++) {
    step(`round ${round}: xtask-supervisor restart web while a task runs`);
    await runAndWatch(page, 'demo', 1); // its answer is still streaming when web goes away
    const pid0 = await webPid(page);
    let c0 = await page.evaluate(() => window.xtaskStream.connects);
    let t = Date.now();
    sup('restart', 'web');
    figure('web_restart_ready_ms', Date.now() - t); // anchor: the supervisor's own "web is READY"
    await page.waitForFunction((c) => window.xtaskStream.connects > c && window.xtaskStream.state === 'live', c0,
      { timeout: 20000, polling: 20 });
    figure('web_restart_to_live_ms', (await page.evaluate(() => window.xtaskStream.liveSince)) - t);
    await page.waitForFunction((p) => {
      for (const tr of document.querySelectorAll('#services tr')) {
        const td = tr.querySelectorAll('td');
        if (td.length > 2 && td[0].textContent === 'web') return td[2].textContent !== p && td[2].textContent !== '0';
      }
      return false;
    }, pid0, { timeout: 10000 });
    await page.waitForFunction(() => (document.querySelector('#task-error')?.textContent || '').includes('was lost'),
      null, { timeout: 10000 });
    step(`live again; web's pid ${pid0} -> ${await webPid(page)}; the cut run said so; a task run now shows its output`);
    await runAndWatch(page, 'demo', 3);

    step(`round ${round}: xtask-supervisor restart auth`);
    t = Date.now();
    sup('restart', 'auth');
    figure('auth_restart_ready_ms', Date.now() - t);
    // the open stream does not depend on auth; the next request through forward-auth does: it works
    // (sessions live in the NATS KV store) or the page says signed out, never nothing
    c0 = await page.evaluate(() => window.xtaskStream.connects);
    await page.evaluate(() => window.dispatchEvent(new Event('online'))); // no-op while live
    await page.click('#results li button');
    await page.waitForSelector('#result-view h2, #conn[data-state="signedout"]', { timeout: 10000 });
    const state = await page.evaluate(() => window.xtaskStream.state);
    if (state !== 'live' && state !== 'signedout') throw new Error(`after restart auth the badge says ${state}`);
    figure(state === 'live' ? 'auth_restart_to_answer_ms' : 'auth_restart_to_signedout_ms', Date.now() - t);
    if (state === 'signedout') {
      await page.waitForSelector('#signedout:not([hidden]) a[href="/web/"]', { timeout: 1000 });
      await page.screenshot({ path: SHOT.replace(/\.png$/, '-auth-signedout.png'), fullPage: true });
      step('the session did not survive restart auth: the page says signed out; signing in again');
      await ctx.clearCookies();
      await Promise.all([page.waitForURL((u) => !u.href.startsWith(APP), { timeout: 10000 }),
                         page.click('#signedout a')]);
      await page.fill('#username', USER);
      await page.fill('#password', PASS);
      await Promise.all([page.waitForURL((u) => u.href.startsWith(APP), { timeout: 15000 }),
                         page.click('button[type=submit]')]);
    }
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 15000 });
    step(`after restart auth: ${state}; live again`);

    step(`round ${round}: xtask-supervisor stop nats, then start it`);
    t = Date.now();
    sup('stop', 'nats');
    await page.waitForSelector('#bus-banner[role="alert"]:not([hidden])', { timeout: 10000 });
    figure('nats_stop_to_banner_ms', Date.now() - t);
    await page.screenshot({ path: SHOT.replace(/\.png$/, '-nats-down.png'), fullPage: true });
    t = Date.now();
    sup('start', 'nats');
    figure('nats_start_ready_ms', Date.now() - t);
    await page.waitForSelector('#bus-banner[hidden]', { state: 'attached', timeout: 20000 });
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 20000 });
    figure('nats_start_to_live_ms', Date.now() - t);
    step('banner gone; a task run now shows its output');
    await runAndWatch(page, 'demo', 2);
  }
  await page.screenshot({ path: SHOT, fullPage: true });
  if (errors.length) throw new Error(`page errors: ${JSON.stringify(errors)}`);
  console.log('RESTARTS OK');
} catch (e) {
  failed = true;
  console.error(`RESTARTS FAILED: ${e.stack || e}`);
  try {
    const pages = ctx.pages();
    if (pages.length) await pages[0].screenshot({ path: SHOT.replace(/\.png$/, '-failure.png'), fullPage: true });
  } catch { /* best effort */ }
} finally {
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
