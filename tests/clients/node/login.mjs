// Scripted login through the server's HTML form, as a browser without JavaScript does it:
// GET the authorization URL, read the hidden fields, POST them with the CSRF cookie, and
// return the Location the server redirects to.
export async function scriptedLogin(authorizationUrl, email, password) {
  const page = await fetch(authorizationUrl, { redirect: 'manual' });
  if (page.status !== 200) throw new Error(`login page answered ${page.status}: ${await page.text()}`);
  const cookie = page.headers.getSetCookie().find((c) => c.startsWith('ca_csrf=')).split(';')[0];
  const html = await page.text();
  const field = (name) => html.match(new RegExp(`name="${name}" value="([^"]*)"`))[1];
  const body = new URLSearchParams({ login: field('login'), csrf: field('csrf'), email, password });
  const post = await fetch(new URL('/login', authorizationUrl), {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body,
  });
  if (post.status !== 303) throw new Error(`login answered ${post.status}`);
  return post.headers.get('location');
}

// Resolves `*.localhost` to 127.0.0.1 for this process (glibc does not), so organizations
// with an own host (`<subdomain>.localhost`) are reachable by their real issuer URL.
export async function pinLocalhostSubdomains() {
  const dns = (await import('node:dns')).default;
  const original = dns.lookup;
  dns.lookup = (host, options, callback) => {
    if (typeof options === 'function') [callback, options] = [options, {}];
    if (!host.endsWith('.localhost')) return original(host, options, callback);
    if (options && options.all) return callback(null, [{ address: '127.0.0.1', family: 4 }]);
    return callback(null, '127.0.0.1', 4);
  };
}
