// What the browser scripts share: headless Debian Chromium with a fresh profile, opening the
// login page directly or through an embedding page, screenshots, and the code of an e-mail the
// test SMTP server wrote.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

// Chromium through playwright-core with a fresh profile directory per run (playwright's way
// of passing --user-data-dir) and playwright context `options` (a viewport…); `close()` closes
// it and removes the profile.
export async function launch(options = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'centralauth-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    ...options,
  });
  const close = async () => {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { browser, close };
}

// Opens input.url — directly, or through input.embedUrl, a page whose iframe shows it — and
// returns the login page's response.
export async function openLogin(page, input) {
  if (!input.embedUrl) return page.goto(input.url);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().startsWith(input.url.split('?')[0])),
    page.goto(input.embedUrl),
  ]);
  return response;
}

// A screenshot into input.artifacts, prefixed with input.shots.
export async function screenshot(page, input, name, fullPage = true) {
  if (!input.artifacts) return;
  return screenshotTo(page, join(input.artifacts, `${input.shots ?? ''}${name}.png`), fullPage);
}

// A screenshot to `path`. Chromium sometimes answers "Unable to capture screenshot" on a busy
// machine: try three times.
export async function screenshotTo(page, path, fullPage = true) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await page.screenshot({ path, fullPage });
    } catch (e) {
      if (attempt === 3) throw e;
      console.error(`screenshot ${path}, attempt ${attempt}: ${e.message.split('\n')[0]}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

// The 5-digit code of the e-mail the test SMTP server wrote to `path` (waits up to 20 s).
export async function emailedCode(path) {
  for (let i = 0; i < 200 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 100));
  const { data } = JSON.parse(readFileSync(path, 'utf8'));
  const match = data.match(/^ {4}(\d{5})\r?$/m);
  if (!match) throw new Error(`no code in the e-mail: ${data}`);
  return match[1];
}
