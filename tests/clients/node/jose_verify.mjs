// The `jose` library verifying signed JWTs against the server's published key set, as a
// resource server would: jwtVerify(token, createRemoteJWKSet(jwksUri), {issuer}).
// Input: JSON {jwksUri, issuer, tokens: [...]} in argv[2]; output: a JSON array with, per
// token, {kid, sub} when it verifies or {error: <jose error code>} when it does not.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const input = JSON.parse(process.argv[2]);
// A fresh set per run: jose caches the JWKS for 10 minutes by default.
const jwks = createRemoteJWKSet(new URL(input.jwksUri));
const results = [];
for (const token of input.tokens) {
  try {
    const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: input.issuer });
    results.push({ kid: protectedHeader.kid, sub: payload.sub });
  } catch (e) {
    results.push({ error: e.code ?? e.message });
  }
}
console.log(JSON.stringify(results));
