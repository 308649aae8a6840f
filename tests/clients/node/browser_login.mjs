// Headless Debian Chromium (driven by playwright-core) opens /login, fills and submits the
// password form — or, with input.maildir, asks for an e-mail code, reads it from the message the
// test SMTP server wrote into maildir, and enters it — and lands on the client's redirect URI
// with a code (a loopback callback: no network here). Screenshots go to input.artifacts
// (prefixed with input.shots, default "").
// With input.embedUrl the browser opens that page instead — another site whose iframe shows the
// login page (url, with embed=1) — and logs in inside the frame.
// Input: JSON {url, embedUrl?, email, password?, maildir?, shots?, callbackPrefix, artifacts}
// in argv[2].
import { join } from 'node:path';
import { emailedCode, launch, openLogin, screenshot as shoot } from './chromium.mjs';

const input = JSON.parse(process.argv[2]);
const { browser, close } = await launch();
try {
  const page = await browser.newPage();
  const response = await openLogin(page, input);
  const headers = response.headers();
  if (response.status() !== 200) throw new Error(`login page answered ${response.status()}: ${await response.text()}`);
  // The document that holds the form: the page itself, or the iframe when embedded.
  const form = input.embedUrl ? await (await page.waitForSelector('iframe')).contentFrame() : page.mainFrame();
  await form.waitForSelector('#email');
  // Screenshots: artifacts for people; the tests check they were written.
  const screenshot = (name, fullPage = true) => shoot(page, input, name, fullPage);
  await form.fill('#email', input.email);
  if (input.maildir) {
    await screenshot('login-page');
    await Promise.all([form.waitForSelector('#code'), form.click('#send-code')]);
    const code = await emailedCode(join(input.maildir, '1.json'));
    await form.fill('#code', code);
    await screenshot('code-page');
  } else {
    await form.fill('#password', input.password);
    await screenshot('login-page');
  }
  await form.click('button[type=submit]');
  await form.waitForURL((u) => u.href.startsWith(input.callbackPrefix), { timeout: 15000 }).catch(async (e) => {
    throw new Error(`${e.message}; the frame shows ${form.url()}: ${await form.textContent('body')}`);
  });
  await screenshot('callback', false);
  const landed = new URL(form.url());
  console.log(JSON.stringify({
    landed: landed.href.split('?')[0],
    code: landed.searchParams.get('code'),
    state: landed.searchParams.get('state'),
    iss: landed.searchParams.get('iss'),
    referrerPolicy: headers['referrer-policy'],
    csp: headers['content-security-policy'],
    xFrameOptions: headers['x-frame-options'] ?? null,
    scripts: await form.evaluate(() => document.scripts.length),
  }));
} finally {
  await close();
}
