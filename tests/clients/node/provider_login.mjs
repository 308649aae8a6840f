// Headless Debian Chromium (driven by playwright-core) logs in with an upstream provider:
// opens the login page, presses the provider's button (#provider-<name>), goes through the
// provider's redirects (Ory Hydra, whose login and consent the test's acceptor accepts) and
// back to the organization's callback, which ends on the app's redirect URI with a code — or
// on a page saying why not. Screenshots go to input.artifacts, prefixed with input.shots.
// Input: JSON {url, provider, callbackPrefix, artifacts, shots} in argv[2].
// Output: {landed, code, state, status, text, buttons, scripts}.
import { launch, screenshot as shoot } from './chromium.mjs';

const input = JSON.parse(process.argv[2]);
const { browser, close } = await launch();
try {
  const page = await browser.newPage();
  let last = null;
  page.on('response', (r) => {
    if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) last = r;
  });
  const screenshot = (name) => shoot(page, input, name, false);
  const first = await page.goto(input.url);
  if (first.status() !== 200) throw new Error(`login page answered ${first.status()}`);
  const button = `#provider-${input.provider}`;
  await page.waitForSelector(button);
  const buttons = await page.$$eval('button.provider', (bs) => bs.map((b) => b.textContent.trim()));
  const scripts = await page.evaluate(() => document.scripts.length);
  await screenshot('login-page');
  await page.click(button);
  // Through the provider and back: the app's callback, or a page of the login server.
  await page.waitForURL((u) => u.href.startsWith(input.callbackPrefix) || u.pathname.includes('/oauth/providers/'), {
    timeout: 20000,
  });
  await page.waitForLoadState('load');
  await screenshot('after-provider');
  const landed = new URL(page.url());
  console.log(JSON.stringify({
    landed: landed.href.split('?')[0],
    code: landed.searchParams.get('code'),
    state: landed.searchParams.get('state'),
    status: last ? last.status() : null,
    text: await page.textContent('body'),
    buttons,
    scripts,
  }));
} finally {
  await close();
}
