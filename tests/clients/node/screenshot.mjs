// Headless Debian Chromium (playwright-core) opens each URL of input.shots and saves a
// full-page screenshot of it. Input: JSON {shots: [{url, path}]} in argv[2]; prints
// {statuses: [...]}.
import { launch, screenshotTo } from './chromium.mjs';

const input = JSON.parse(process.argv[2]);
const { browser, close } = await launch({ viewport: { width: 1100, height: 700 } });
try {
  const statuses = [];
  for (const shot of input.shots) {
    const page = await browser.newPage();
    const response = await page.goto(shot.url);
    statuses.push(response.status());
    await page.waitForSelector('#email');
    await screenshotTo(page, shot.path);
    await page.close();
  }
  console.log(JSON.stringify({ statuses }));
} finally {
  await close();
}
