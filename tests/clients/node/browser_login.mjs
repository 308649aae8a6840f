// Headless Debian Chromium (driven by playwright-core) opens /login, fills and submits the
// password form, and lands on the client's redirect URI with a code (a loopback callback: no
// network here). Screenshots go to input.artifacts.
// Input: JSON {url, email, password, callbackPrefix, artifacts} in argv[2].
import { mkdtempSync } from 'node:fs';
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
  await page.fill('#email', input.email);
  await page.fill('#password', input.password);
  await page.screenshot({ path: join(input.artifacts, 'login-page.png'), fullPage: true });
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(input.callbackPrefix)),
    page.click('button[type=submit]'),
  ]);
  await page.screenshot({ path: join(input.artifacts, 'callback.png') });
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
