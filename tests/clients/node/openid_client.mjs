// openid-client v6 against the server: discovery, authorization code + PKCE (with its strict
// issuer and RFC 9207 `iss` checks), ID token validation, userinfo, refresh, introspection,
// client credentials. Input: JSON in argv[2]; output: one JSON object on stdout.
import * as client from 'openid-client';
import { pinLocalhostSubdomains, scriptedLogin } from './login.mjs';

const input = JSON.parse(process.argv[2]);
if (input.pinLoopback) await pinLocalhostSubdomains();
const config = await client.discovery(new URL(input.issuer), input.clientId, input.clientSecret, undefined, {
  execute: [client.allowInsecureRequests],
});
const verifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const nonce = client.randomNonce();
const url = client.buildAuthorizationUrl(config, {
  redirect_uri: input.redirectUri,
  scope: 'openid email offline_access',
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  state,
  nonce,
});
const location = await scriptedLogin(url.href, input.email, input.password);
const tokens = await client.authorizationCodeGrant(config, new URL(location), {
  pkceCodeVerifier: verifier,
  expectedState: state,
  expectedNonce: nonce,
  idTokenExpected: true,
});
const claims = tokens.claims();
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
const introspection = await client.tokenIntrospection(config, tokens.access_token);
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
let reuse = 'accepted';
try {
  await client.refreshTokenGrant(config, tokens.refresh_token);
} catch (e) {
  reuse = e.error ?? e.code ?? String(e);
}
const cc = await client.clientCredentialsGrant(config, { scope: 'email' });
console.log(JSON.stringify({
  issuer: config.serverMetadata().issuer,
  sub: claims.sub,
  email: claims.email,
  userinfo,
  introspectionActive: introspection.active,
  refreshed: Boolean(refreshed.access_token) && refreshed.refresh_token !== tokens.refresh_token,
  refreshReuse: reuse,
  clientCredentials: Boolean(cc.access_token),
  accessToken: tokens.access_token,
}));
