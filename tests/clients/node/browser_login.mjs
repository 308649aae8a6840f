// Headless Debian Chromium (driven by playwright-core) opens /login, fills and submits the
// password form — or, with input.maildir, asks for an e-mail code, reads it from the message the
// test SMTP server wrote into maildir, and enters it — and lands on the client's redirect URI
// with a code (a loopback callback: no network here). Screenshots go to input.artifacts
// (prefixed with input.shots, default "").
// Input: JSON {url, email, password?, maildir?, shots?, callbackPrefix, artifacts} in argv[2].
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const input = JSON.parse(process.argv[2]);
// A fresh profile directory per run (playwright's way of passing --user-data-dir).
const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'centralauth-chromium-')), {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
try {
  const page = await browser.newPage();
  const response = await page.goto(input.url);
  const headers = response.headers();
  if (response.status() !== 200) throw new Error(`login page answered ${response.status()}: ${await page.textContent('body')}`);
  const shot = (name) => join(input.artifacts, `${input.shots ?? ''}${name}.png`);
  await page.fill('#email', input.email);
  if (input.maildir) {
    await page.screenshot({ path: shot('login-page'), fullPage: true });
    await Promise.all([page.waitForSelector('#code'), page.click('#send-code')]);
    const code = await emailedCode(join(input.maildir, '1.json'));
    await page.fill('#code', code);
    await page.screenshot({ path: shot('code-page'), fullPage: true });
  } else {
    await page.fill('#password', input.password);
    await page.screenshot({ path: shot('login-page'), fullPage: true });
  }
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(input.callbackPrefix)),
    page.click('button[type=submit]'),
  ]);
  await page.screenshot({ path: shot('callback') });
  const landed = new URL(page.url());
  console.log(JSON.stringify({
    landed: landed.href.split('?')[0],
    code: landed.searchParams.get('code'),
    state: landed.searchParams.get('state'),
    iss: landed.searchParams.get('iss'),
    referrerPolicy: headers['referrer-policy'],
    csp: headers['content-security-policy'],
    scripts: await page.evaluate(() => document.scripts.length),
  }));
} finally {
  await browser.close();
}

// The 5-digit code of the first message the test SMTP server received (waits up to 20 s).
async function emailedCode(path) {
  for (let i = 0; i < 200 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 100));
  const { data } = JSON.parse(readFileSync(path, 'utf8'));
  const match = data.match(/^ {4}(\d{5})\r?$/m);
  if (!match) throw new Error(`no code in the e-mail: ${data}`);
  return match[1];
}
