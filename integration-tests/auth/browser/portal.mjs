// Browser test of the login portal (driven by test_portal_browser.py, which starts xtask-auth behind
// the xtask-web TLS front and passes everything in the environment). A screenshot at every step.
import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} not set`); return v; };
const APP = env('E2E_APP_URL');           // a page behind a two_factor rule
const PORTAL = env('E2E_PORTAL_PREFIX');  // https://auth.xtask.test:PORT/
const USER = env('E2E_USER'), PASS = env('E2E_PASS'), SECRET = env('E2E_SECRET');
const SHOTS = env('E2E_SCREENSHOT_DIR');
const RULES = env('E2E_RESOLVER_RULES');
const USER2 = env('E2E_USER2'), PASS2 = env('E2E_PASS2');   // no TOTP yet: enrols from the portal
const NOTIFY = env('E2E_NOTIFY_FILE'), TOTP_FILE = env('E2E_TOTP_FILE');

// RFC 6238 (SHA1, 6 digits, 30 s), computed here independently of the service
function base32(s) {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0, val = 0;
  const out = [];
  for (const c of s.replace(/=+$/, '').toUpperCase()) {
    val = ((val << 5) | abc.indexOf(c)) & 0xffff;
    bits += 5;
    if (bits >= 8) { out.push((val >>> (bits - 8)) & 0xff); bits -= 8; }
  }
  return Buffer.from(out);
}
export function totp(secret, t = Date.now() / 1000) {
  const c = Buffer.alloc(8);
  c.writeBigUInt64BE(BigInt(Math.floor(t / 30)));
  const h = createHmac('sha1', base32(secret)).update(c).digest();
  const o = h[h.length - 1] & 15;
  return String((h.readUInt32BE(o) & 0x7fffffff) % 1000000).padStart(6, '0');
}
const wrongCode = (code) => String((Number(code) + 1) % 1000000).padStart(6, '0');
// wait, with a deadline, until the current 30 s step has at least 8 s left (a code must stay current)
async function stableStep() {
  const deadline = Date.now() + 15000;
  while ((Date.now() / 1000) % 30 > 22) {
    if (Date.now() > deadline) throw new Error('no stable TOTP step');
    await new Promise((r) => setTimeout(r, 200));
  }
}

let n = 0;
const step = async (page, s) => {
  console.log(`step: ${s}`);
  if (page) await page.screenshot({ path: join(SHOTS, `portal-${String(++n).padStart(2, '0')}.png`), fullPage: true });
};
const expectText = async (page, sel, re) => {
  await page.waitForSelector(sel, { timeout: 10000 });
  const t = (await page.textContent(sel)) || '';
  if (!re.test(t)) throw new Error(`${sel}: "${t}" does not match ${re}`);
  return t;
};

const profile = mkdtempSync(join(tmpdir(), 'xt-chromium-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         `--host-resolver-rules=${RULES}`],
  ignoreHTTPSErrors: true,
  viewport: { width: 1000, height: 800 },
});
let failed = false;
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  const errors = [];
  // the portal's pages must load cleanly (the app behind it is a JSON stand-in without a favicon)
  page.on('console', (m) => {
    if (m.type() === 'error' && (m.location().url || '').startsWith(PORTAL)) errors.push(`${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('response', (r) => { if (r.status() >= 400 && r.status() !== 401) errors.push(`${r.status()} ${r.url()}`); });
  const submit = (waitFor) => Promise.all([page.waitForNavigation({ timeout: 15000 }), page.click('button[type=submit] >> nth=0')])
    .then(() => (waitFor ? page.waitForSelector(waitFor, { timeout: 10000 }) : null));

  await page.goto(APP);
  await page.waitForURL((u) => u.href.startsWith(PORTAL), { timeout: 10000 });
  await step(page, 'the app sends us to the portal');

  await page.fill('#username', USER);
  await page.fill('#password', 'not-the-password');
  await submit('#error');
  await expectText(page, '#error', /^Incorrect username or password\.$/);
  if ((await page.inputValue('#username')) !== USER) throw new Error('the username was not kept');
  await step(page, 'a wrong password: a generic message, the username kept');

  await page.fill('#password', PASS);
  await submit('#token');
  await step(page, 'the right password: the one-time code form');

  await stableStep();
  const code = totp(SECRET);
  await page.fill('#token', wrongCode(code));
  await submit('#error');
  await expectText(page, '#error', /^Wrong code\./);
  await step(page, 'a wrong code says so');

  await page.fill('#token', code);
  await Promise.all([page.waitForURL((u) => u.href.startsWith(APP), { timeout: 15000 }), page.click('button[type=submit] >> nth=0')]);
  await step(page, 'the right code: on to the app');

  await page.goto(PORTAL);
  await expectText(page, '#user', new RegExp(`^${USER}$`));
  await step(page, 'the portal says who is signed in');

  await Promise.all([page.waitForNavigation({ timeout: 10000 }), page.click('button:text("Sign out")')]);
  await page.waitForSelector('#username', { timeout: 10000 });
  await step(page, 'signed out');
  // Back through the whole history: every entry is a GET (post/redirect/get), none asks to resubmit
  for (let i = 0; i < 12; i++) {
    const r = await page.goBack({ timeout: 10000 });
    if (!r) break;
    const url = page.url();
    if (url.startsWith('chrome-error:') || r.request().method() !== 'GET')
      throw new Error(`Back reached ${url} by ${r.request().method()}`);
    if (/ERR_CACHE_MISS|Confirm Form Resubmission/.test(await page.content())) throw new Error(`Back at ${url} asks to resubmit`);
  }
  await step(page, 'Back after sign-out: no form resubmitted');

  await page.goto(PORTAL);
  await page.fill('#username', USER);
  await page.fill('#password', PASS);
  await submit('#token');
  await page.fill('#token', code);
  await submit('#error');
  await expectText(page, '#error', /^That code was already used/);
  await step(page, 'the code used a moment ago is refused as used');

  await page.fill('#token', wrongCode(code));
  await submit('#error');
  await expectText(page, '#error', /^Wrong code\./);
  await page.fill('#token', wrongCode(code));
  await submit('#error');
  await expectText(page, '#error', /^Too many failed attempts: locked out\. Try again in (\d+ min )?\d+ s\.$/);
  if ((await page.inputValue('#username')) !== USER) throw new Error('the username was not kept after the lock-out');
  await step(page, 'locked out, with the time left');

  // --- enrolment: identity verification through the notifier, then the QR code ---
  await page.fill('#username', USER2);
  await page.fill('#password', PASS2);
  await submit('#token');
  await expectText(page, '#error', /^No one-time password is enrolled for you yet/);
  await step(page, 'a user without TOTP: told so, with a link to set one up');
  await Promise.all([page.waitForNavigation({ timeout: 10000 }), page.click('#enrol')]);
  await page.waitForSelector('#send', { timeout: 10000 });
  await step(page, 'the enrolment page asks to confirm the identity first');
  await submit('#otc');
  await expectText(page, '#notice', /^A one-time code was sent to you/);
  const mail = readFileSync(NOTIFY, 'utf8');
  const otc = (/authenticator app: ([A-Z0-9]{8})/.exec(mail) || [])[1];
  if (!otc || !mail.includes(`Recipient: `)) throw new Error(`no code in the notifier's file: ${mail}`);
  await step(page, 'the one-time code went to the notifier');
  await page.fill('#otc', otc.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')));
  await submit('#error');
  await expectText(page, '#error', /^That one-time code is not right\.$/);
  await page.fill('#otc', otc.toLowerCase());
  await submit('#qr');
  await step(page, 'identity confirmed: the QR code');
  const qrPng = join(SHOTS, 'portal-qr.png');
  await page.locator('#qr').screenshot({ path: qrPng });
  const uri = execFileSync('zbarimg', ['--raw', '-q', qrPng], { encoding: 'utf8' }).trim();
  const m = /^otpauth:\/\/totp\/[^?]+\?secret=([A-Z2-7]+)&/.exec(uri);
  if (!m || !uri.includes(encodeURIComponent(USER2))) throw new Error(`the QR code reads ${uri}`);
  const newSecret = m[1];
  if ((await page.textContent('#secret')) !== newSecret) throw new Error('the typed-in secret differs from the QR code');
  console.log(`QR code decoded by zbarimg: otpauth://totp/...&secret=<${newSecret.length} chars>`);
  await stableStep();
  const newCode = totp(newSecret);
  await page.fill('#token', wrongCode(newCode));
  await submit('#error');
  await expectText(page, '#error', /^Wrong code\./);
  const before = (() => { try { return readFileSync(TOTP_FILE, 'utf8'); } catch { return ''; } })();
  if (before.includes(USER2)) throw new Error('the new secret was stored before a code from it was accepted');
  await step(page, 'a wrong code from the new secret: nothing stored');
  await page.fill('#token', newCode);
  await submit('#notice');
  await expectText(page, '#notice', /^Your authenticator app is set up/);
  if (!readFileSync(TOTP_FILE, 'utf8').includes(`"${USER2}": "${newSecret}"`)) throw new Error('the new secret is not in the store');
  await step(page, 'the code from the QR secret accepted: enrolled');
  // the service now holds that secret: the code just used is known to it, as used
  await page.fill('#token', newCode);
  await submit('#error');
  await expectText(page, '#error', /^That code was already used/);
  await step(page, 'the enrolled secret is the one the service checks');

  if (errors.length) throw new Error(`console errors: ${JSON.stringify(errors)}`);
  console.log('PORTAL E2E OK');
} catch (e) {
  failed = true;
  console.error(`PORTAL E2E FAILED: ${e.stack || e}`);
  try {
    const pages = ctx.pages();
    if (pages.length) {
      await pages[0].screenshot({ path: join(SHOTS, 'portal-failure.png'), fullPage: true });
      console.error(`at ${pages[0].url()}`);
    }
  } catch { /* best effort */ }
} finally {
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
