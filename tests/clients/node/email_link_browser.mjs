// E-mail links and number challenges in two real browsers: device A (headless Chromium) asks for
// the e-mail on the login page and waits on the page that shows the token or number; device B
// (a second Chromium, other cookies) opens a link of the e-mail the test SMTP server received
// and clicks its button. Device A's page script polls and continues by itself.
//
// Input (JSON in argv[2]):
//   url, email, maildir, mailIndex, callbackPrefix, artifacts, shots
//   mode      "there": B opens "log in on the device where you asked" and A logs in;
//             "here": B opens "log in on this device" and B logs in;
//             "challenge": B opens the link of the number A shows (or, with wrong, another one)
//   wrong     challenge only: open a link of another number
//   delayMs   wait this long before B opens the link (expiry)
//   reopen    afterwards B opens the same link again
// Output (JSON): {shown, mailShows, numbers, opened, landedOn, code, state, aAfter, reopened}
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { launch, screenshot } from './chromium.mjs';

const input = JSON.parse(process.argv[2]);
const a = await launch();
const b = await launch();
try {
  const pageA = await a.browser.newPage();
  const pageB = await b.browser.newPage();
  await pageA.goto(input.url);
  await pageA.fill('#email', input.email);
  await Promise.all([pageA.waitForURL(/\/login\/wait/), pageA.click('#send-code')]);
  const shown = (await pageA.textContent('#shown')).trim();
  await screenshot(pageA, input, 'wait-page');
  const body = mailBody(join(input.maildir, `${input.mailIndex ?? 1}.json`));
  const links = [...body.matchAll(/^\s*(?:(\d+): )?(\S+\/login\/mail\?t=\S+)\s*$/gm)].map((m) => ({ label: m[1], url: m[2] }));
  const mailShows = body.match(/login page shows (\S+), then:/)?.[1] ?? null;
  let link;
  if (input.mode === 'challenge') {
    link = links.find((l) => (input.wrong ? l.label !== shown : l.label === shown));
  } else {
    link = input.mode === 'here' ? links[0] : links[1];
  }
  if (input.delayMs) await new Promise((r) => setTimeout(r, input.delayMs));
  const opened = await open(pageB, link.url);
  let landedOn = null;
  let landed = null;
  if (opened === 'confirmed' || opened === 'landed') {
    const page = opened === 'landed' ? pageB : pageA;
    landedOn = opened === 'landed' ? 'B' : 'A';
    // A's script polls every 2 s and reloads once the e-mail confirmed the login.
    await page.waitForURL((u) => u.href.startsWith(input.callbackPrefix), { timeout: 20000 });
    landed = new URL(page.url());
    await screenshot(page, input, 'callback');
  }
  let aAfter = null;
  if (opened === 'burned' || opened === 'gone') {
    await pageA.reload();
    aAfter = (await pageA.textContent('body')).trim();
  }
  const reopened = input.reopen ? await open(pageB, link.url) : null;
  console.log(JSON.stringify({
    shown, mailShows, numbers: links.map((l) => l.label ?? null), opened, landedOn,
    code: landed?.searchParams.get('code') ?? null, state: landed?.searchParams.get('state') ?? null,
    aAfter, reopened,
  }));
} finally {
  await a.close();
  await b.close();
}

// Opens an e-mail link as a person does: the page, then its button. What happened:
// "confirmed" (the starting device continues), "landed" (this device is logged in, on the
// app's callback), "burned" (a wrong number), "gone" (expired or used).
async function open(page, url) {
  await page.goto(url);
  if (await page.$('#link-gone')) return 'gone';
  await Promise.all([page.waitForLoadState('load'), page.click('#open-link')]);
  const landed = page.waitForURL((u) => u.href.startsWith(input.callbackPrefix), { timeout: 20000 }).then(() => 'landed');
  const shown = page.waitForSelector('#confirmed, #burned, #link-gone', { timeout: 20000 }).then(async () => {
    if (await page.$('#confirmed')) return 'confirmed';
    return (await page.$('#burned')) ? 'burned' : 'gone';
  });
  // The loser of the race times out later: caught, so it cannot crash the script.
  return Promise.race([landed.catch(() => 'timeout'), shown.catch(() => 'timeout')]);
}

// The text of the e-mail the test SMTP server wrote to `path` (quoted-printable or base64
// decoded; waits up to 20 s).
function mailBody(path) {
  const deadline = Date.now() + 20000;
  while (!existsSync(path) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  const data = JSON.parse(readFileSync(path, 'utf8')).data.replace(/\r\n/g, '\n');
  const split = data.indexOf('\n\n');
  const head = data.slice(0, split).toLowerCase();
  const body = data.slice(split + 2);
  if (head.includes('content-transfer-encoding: base64')) {
    return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  }
  if (head.includes('content-transfer-encoding: quoted-printable')) {
    const bytes = body.replace(/=\n/g, '').replace(/=([0-9A-F]{2})/gi, (_, h) => String.fromCharCode(parseInt(h, 16)));
    return Buffer.from(bytes, 'latin1').toString('utf8');
  }
  return body;
}
