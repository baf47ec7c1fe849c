// Browser end to end: log in through the portal, see the nodes, run a task, watch its output arrive,
// log out. Driven by test_browser.py, which starts the stack and passes everything in the environment.
import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} not set`); return v; };
const APP = env('E2E_APP_URL');          // https://app.xtask.test:PORT/web/
const PORTAL = env('E2E_PORTAL_PREFIX');  // https://auth.xtask.test:PORT/
const USER = env('E2E_USER'), PASS = env('E2E_PASS'), NODE = env('E2E_NODE'), TASK = env('E2E_TASK');
const SHOT = env('E2E_SCREENSHOT');
const RULES = env('E2E_RESOLVER_RULES');  // MAP *.xtask.test 127.0.0.1
const FULL = process.env.E2E_FULL === '1';
const EDGE_STOP = env('E2E_EDGE_STOP'); // written when the simulated edge node must go silent // the real node: error replies, demo/slow tasks, results stream
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const step = (s) => console.log(`step: ${s}`);
const shotAt = (name) => SHOT.replace(/\.png$/, `-${name}.png`);

// axe-core in the page ('unsafe-eval' is in the page's CSP; evaluate runs it as a script)
async function checkAxe(page, what) {
  await page.evaluate(AXE);
  const v = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations
    .map((x) => `${x.id} (${x.impact}): ${x.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`));
  if (v.length) throw new Error(`axe-core on ${what}: ${JSON.stringify(v)}`);
  step(`axe-core: no violations (${what})`);
}

async function run(page, node, task, args = '') {
  await page.fill('#run-node', node);
  await page.fill('#run-task', task);
  await page.fill('#run-args', args);
  await page.click('#run-submit');
}

async function expectError(page, node, task, args, want) {
  await page.evaluate(() => { document.querySelector('#task-error').textContent = ''; });
  await run(page, node, task, args);
  await page.waitForFunction((w) => (document.querySelector('#task-error')?.textContent || '').includes(w), want,
    { timeout: 10000 });
  const shown = await page.textContent('#task-error');
  if (!(await page.isVisible('#task-error'))) throw new Error(`the error is not visible: ${shown}`);
  step(`${task}${args ? ' ' + args : ''} on ${node}: "${shown}"`);
}

async function fullChecks(page, ctx, errors) {
  step("the task picker: each node's tasks with their description and whether they take arguments");
  const summary = page.locator(`#picker details:has(.node-id:text-is("${NODE}")) summary`);
  const pick = page.locator(`#picker details:has(.node-id:text-is("${NODE}")) li:has(button:text-is("demo"))`);
  const help = await pick.textContent();
  if (!help.includes('eight steps, half a second apart') || !help.includes('no arguments')) throw new Error(`picker: ${help}`);
  // another node joining re-renders the picker, which closes the node opened: open it again until
  // the click lands (bounded)
  for (const end = Date.now() + 10000; ;) {
    if (!(await pick.locator('button').isVisible())) await summary.click();
    try {
      await pick.locator('button').click({ timeout: 1000 });
      break;
    } catch (e) {
      if (Date.now() > end) throw e;
    }
  }
  await page.waitForFunction(() => document.querySelector('#run-task').value === 'demo', null, { timeout: 5000 });
  const [pn, ph] = await page.evaluate(() => [document.querySelector('#run-node').value,
    document.querySelector('#run-args').placeholder]);
  if (pn !== NODE || ph !== 'this task takes no arguments') throw new Error(`picked: ${pn} / ${ph}`);
  step(`picked demo on ${pn}: "${help.trim()}"`);

  step('an edge node: listed live with where it attaches, offline within its TTL');
  const edgeRow = '#nodes tr.node:has(td.node-id:text-is("edge-ci-1"))';
  await page.waitForSelector(`${edgeRow} .tag.edge`, { timeout: 10000 });
  const where = await page.textContent(`${edgeRow} td.where`);
  if (!where.includes('ams') || !where.includes('ci')) throw new Error(`edge row: ${where}`);
  writeFileSync(EDGE_STOP, 'stop');
  const t0 = Date.now();
  await page.waitForSelector(`${edgeRow}.offline .node-state.off`, { timeout: 8000 });
  step(`edge-ci-1 (${where.trim()}) offline ${Date.now() - t0} ms after its last heartbeat stopped (TTL 3 s)`);

  step('projects: the selector offers what this user may see; another project is refused, and said so');
  const offered = await page.$$eval('#project-list option', (o) => o.map((x) => x.value));
  if (JSON.stringify(offered) !== '["default"]') throw new Error(`projects offered: ${JSON.stringify(offered)}`);
  await page.fill('#project', 'ops');
  await page.dispatchEvent('#project', 'change');
  await page.waitForSelector('#denied:not([hidden])', { timeout: 10000 });
  const denied = await page.textContent('#denied');
  if (!denied.includes("may not see project 'ops'")) throw new Error(`denied banner: ${denied}`);
  await page.fill('#project', 'default');
  await page.dispatchEvent('#project', 'change');
  await page.waitForSelector('#denied[hidden]', { state: 'attached', timeout: 10000 });
  await page.waitForSelector('#conn[data-state="live"]', { timeout: 10000 });
  step(`refused: "${denied}"; back on default`);

  step('errors are shown: unknown task, arguments to a task without any, unknown node');
  await expectError(page, NODE, 'no-such-task', '', 'refused');
  await expectError(page, NODE, TASK, 'extra', 'takes no arguments');
  await expectError(page, 'ghost-node', TASK, '', 'unknown or stopped');
  await page.screenshot({ path: shotAt('errors'), fullPage: true });

  step('a result opens from the results stream');
  await page.click('#results li.ok button');
  await page.waitForSelector('#result-view dd.ok', { timeout: 10000 });
  const view = await page.textContent('#result-view');
  if (!view.includes('exit 0') || !view.includes('line 5 of 5')) throw new Error(`result view: ${view}`);

  step('a timed-out task says so (never "exit -1")');
  await run(page, NODE, 'slow');
  await page.waitForSelector('#results li.fail:has-text("timed out")', { timeout: 15000 });
  await page.click('#results li.fail:has-text("timed out") button');
  await page.waitForSelector('#result-view dd.fail:text-is("timed out")', { timeout: 10000 });
  const all = await page.textContent('main');
  if (all.includes('exit -1')) throw new Error('the page says "exit -1"');

  step('a running task is re-attached after a reload');
  await run(page, NODE, 'demo');
  await page.waitForFunction(() => document.querySelector('#task-id')?.textContent.length > 0, null, { timeout: 10000 });
  const id = await page.textContent('#task-id');
  await page.waitForFunction((i) => document.querySelectorAll(`#task-${i} pre.out span`).length >= 2, id, { timeout: 10000 });
  errors.length = 0;
  await page.reload();
  await page.waitForSelector('#conn[data-state="live"]', { timeout: 10000 });
  const kept = await page.$$eval(`#task-${id} pre.out span`, (e) => e.length);
  if (kept < 2) throw new Error(`after the reload the task shows ${kept} lines`);
  await page.waitForFunction((i) => document.querySelectorAll(`#task-${i} pre.out span`).length >= 8, id, { timeout: 15000 });
  await page.waitForSelector(`#st-${id}.ok`, { timeout: 10000 });
  if (errors.length) throw new Error(`console errors after the reload: ${JSON.stringify(errors)}`);
  step(`re-attached: ${kept} lines kept, the rest arrived`);

  for (const w of [360, 390]) {
    await page.setViewportSize({ width: w, height: 800 });
    await page.waitForTimeout(100); // one layout pass
    const sw = await page.evaluate(() => document.documentElement.scrollWidth);
    await page.screenshot({ path: shotAt(`${w}px`), fullPage: true });
    if (sw > w) throw new Error(`at ${w} px the page is ${sw} px wide (horizontal scroll)`);
    step(`${w} px: no horizontal page scroll`);
  }
  await checkAxe(page, '360 px');
  await page.setViewportSize({ width: 1360, height: 900 });

  step('a session that ends: the other page says signed out');
  const other = await ctx.newPage();
  await other.goto(APP);
  await other.waitForSelector('#conn[data-state="live"]', { timeout: 10000 });
  const out = await page.evaluate(async () => { const r = await fetch('/api/logout', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }); return `${r.status} ${await r.text()}`; });
  step(`logged out on the first page: ${out}`);
  await other.waitForSelector('#signedout:not([hidden]) a[href="/web/"]', { timeout: 10000 });
  await other.waitForSelector('#conn[data-state="signedout"]', { timeout: 1000 });
  await other.screenshot({ path: shotAt('signedout'), fullPage: true });
  await other.close();
  step('signed out shown, with the link to sign in again');
  await page.goto(APP); // back to the portal: the last step (log out) expects a session
  await page.waitForURL((u) => u.href.startsWith(PORTAL), { timeout: 10000 });
  await page.fill('#username', USER);
  await page.fill('#password', PASS);
  await Promise.all([page.waitForURL((u) => u.href.startsWith(APP), { timeout: 15000 }), page.click('button[type=submit]')]);
  await page.waitForSelector('#conn[data-state="live"]', { timeout: 10000 });
  errors.length = 0;
}
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
  const svc = await page.$$eval('#services tr:first-child td', (t) => t.map((x) => x.textContent));
  if (svc.length !== 7) throw new Error(`services row: ${JSON.stringify(svc)}`);
  if (await page.isVisible('#nats-link')) throw new Error('NATS monitoring is linked for a non-admin');
  step(`services: ${JSON.stringify(svc)} (no NATS monitoring link for a developer)`);

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
  await checkAxe(page, 'dashboard');
  if (FULL) await fullChecks(page, ctx, errors);

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
