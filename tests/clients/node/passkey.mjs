// Headless Debian Chromium (playwright-core) with a CDP virtual authenticator (CTAP2, resident
// keys, user verification) registers or uses a passkey on the login page.
//
// Input (JSON in argv[2]):
//   url             the login URL (authorization request)
//   embedUrl        optional: a page of another site whose iframe shows `url` (embed=1)
//   action          "register": e-mail code login (code read from maildir/<mailIndex>.json),
//                   then "Create a passkey" on the offer page;
//                   "login": "Log in with a passkey" (with `email` typed first when given)
//   email, maildir, mailIndex
//   credentials     virtual-authenticator credentials to load first (from an earlier run)
//   hold            login only: do not let the assertion reach the server; print it, with the
//                   login's hidden fields and cookies, for the test to post itself
//   callbackPrefix, artifacts, shots
// Output (JSON): {landed, code, state, error, page, credentials, held, scripts, csp}
import { join } from 'node:path';
import { emailedCode, launch, openLogin, screenshot } from './chromium.mjs';

const input = JSON.parse(process.argv[2]);
const { browser, close } = await launch();
try {
  const page = await browser.newPage();
  const cdp = await browser.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', ctap2Version: 'ctap2_1', transport: 'internal', hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
    },
  });
  for (const credential of input.credentials ?? []) {
    await cdp.send('WebAuthn.addCredential', { authenticatorId, credential });
  }
  let held = null;
  if (input.hold) {
    await page.route((u) => u.pathname === '/login/passkey', async (route) => {
      held = { form: route.request().postData() };
      await route.fulfill({ status: 200, contentType: 'text/html', body: '<p id="held">held</p>' });
    });
  }
  const response = await openLogin(page, input);
  const frame = input.embedUrl ? await (await page.waitForSelector('iframe')).contentFrame() : page.mainFrame();
  await frame.waitForSelector('#email');
  const headers = response.headers();
  const scripts = await frame.evaluate(() => document.scripts.length);
  const shot = (name) => screenshot(page, input, name);
  if (input.action === 'register') {
    await frame.fill('#email', input.email);
    await Promise.all([frame.waitForSelector('#code'), frame.click('#send-code')]);
    await frame.fill('#code', await emailedCode(join(input.maildir, `${input.mailIndex ?? 1}.json`)));
    await Promise.all([frame.waitForSelector('#passkey-create:visible'), frame.click('#code ~ button[type=submit]')]);
    await shot('passkey-offer');
    await frame.click('#passkey-create');
  } else {
    await frame.waitForSelector('#passkey-login:visible');
    await shot('passkey-login-page');
    if (input.email) await frame.fill('#email', input.email);
    await frame.click('#passkey-login');
  }
  const outcome = await Promise.race([
    frame.waitForURL((u) => u.href.startsWith(input.callbackPrefix), { timeout: 20000 }).then(() => 'landed'),
    frame.waitForSelector('#passkey-error:visible, p.error', { timeout: 20000 }).then(() => 'error'),
    frame.waitForSelector('#held', { timeout: 20000 }).then(() => 'held'),
  ]).catch((e) => `timeout: ${e.message.split('\n')[0]}`);
  const text = await frame.textContent('body').catch(() => '');
  const error = outcome === 'error'
    ? (await frame.textContent('#passkey-error:visible, p.error').catch(() => text)).trim()
    : null;
  if (outcome === 'landed') await shot(input.action === 'register' ? 'passkey-registered' : 'passkey-callback');
  const landed = outcome === 'landed' ? new URL(frame.url()) : null;
  if (held) {
    const form = new URLSearchParams(held.form);
    const cookies = (await browser.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    held = { credential: form.get('credential'), login: form.get('login'), csrf: form.get('csrf'), cookies };
  }
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  console.log(JSON.stringify({
    outcome,
    landed: landed ? landed.href.split('?')[0] : null,
    code: landed?.searchParams.get('code') ?? null,
    state: landed?.searchParams.get('state') ?? null,
    error,
    page: outcome.startsWith('timeout') ? text : null,
    credentials,
    held,
    scripts,
    csp: headers['content-security-policy'],
  }));
} finally {
  await close();
}
