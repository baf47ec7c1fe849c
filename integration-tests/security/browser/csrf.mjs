// Cross-site requests in Debian's chromium (playwright-core): a signed-in user's browser opens pages
// of other origins that try to change state on our front. Driven by test_sec_browser_csrf.py, which
// checks the server side (front log, audit stream, session) before and after.
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const APP = process.env.CSRF_APP;           // http://app.xtask.test:<port>
const ATTACKERS = JSON.parse(process.env.CSRF_ATTACKERS); // attack page URLs
const COOKIE = JSON.parse(process.env.CSRF_COOKIE);       // {name, value, domain, sameSite}
const NODE = process.env.CSRF_NODE;
const RULES = process.env.CSRF_RESOLVER_RULES;

const profile = mkdtempSync(join(tmpdir(), 'xt-chromium-csrf-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         `--host-resolver-rules=${RULES}`],
});
let failed = false;
try {
  await ctx.addCookies([{ name: COOKIE.name, value: COOKIE.value, domain: COOKIE.domain, path: '/',
                          httpOnly: true, secure: false, sameSite: COOKIE.sameSite }]);
  const page = ctx.pages()[0] || await ctx.newPage();
  // control: our own page may start a task (the session and the API work from this browser)
  const r = await page.goto(`${APP}/app/page`);
  if (r.status() !== 200) throw new Error(`signed-in page answered ${r.status()}`);
  const own = await page.evaluate(async (node) => {
    const x = await fetch('/api/v1/tasks', { method: 'POST', credentials: 'include',
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ node, task: 'noop' }) });
    return { status: x.status, body: await x.text() };
  }, NODE);
  if (own.status !== 200) throw new Error(`same-origin task: ${own.status} ${own.body}`);
  console.log(`CONTROL ${JSON.stringify(JSON.parse(own.body).id)}`);
  for (const url of ATTACKERS) {
    await page.goto(url);
    await page.waitForFunction(() => document.title === 'done', null, { timeout: 15000 });
    // every iframe got its answer (a cross-origin frame's load event still fires)
    await page.waitForFunction(() => window.loaded >= 4, null, { timeout: 15000 });
    console.log(`ATTACKED ${url}`);
  }
  // still signed in, in this browser
  const back = await page.goto(`${APP}/app/page`);
  if (back.status() !== 200 || !back.url().startsWith(APP)) throw new Error(`after the attacks: ${back.status()} ${back.url()}`);
  console.log('STILL SIGNED IN');
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.stack || e}`);
} finally {
  await ctx.close();
}
process.exit(failed ? 1 : 0);
