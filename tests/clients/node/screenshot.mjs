// Headless Debian Chromium (playwright-core) opens each URL of input.shots and saves a
// full-page screenshot of it. Input: JSON {shots: [{url, path}]} in argv[2]; prints
// {statuses: [...]}.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const input = JSON.parse(process.argv[2]);
const profile = mkdtempSync(join(tmpdir(), 'centralauth-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1100, height: 700 },
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
try {
  const statuses = [];
  for (const shot of input.shots) {
    const page = await browser.newPage();
    const response = await page.goto(shot.url);
    statuses.push(response.status());
    await page.waitForSelector('#email');
    for (let attempt = 1; ; attempt++) {
      try {
        await page.screenshot({ path: shot.path, fullPage: true });
        break;
      } catch (e) {
        if (attempt === 3) throw e;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    await page.close();
  }
  console.log(JSON.stringify({ statuses }));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
