// Signs in to a running tokend as an OpenID Connect relying party with
// openid-client (the current major): discovery, an authorization URL with
// PKCE, state and nonce, the hosted login form followed as a browser would
// (a cookie jar, the form's hidden fields), the code exchange with ID-token
// validation, userinfo, a refresh, and RP-initiated logout.
//
//   node oidc.mjs BASE_URL CLIENT_ID EMAIL PASSWORD REDIRECT_URI POST_LOGOUT_URI ALG
//
// Prints one JSON line per step and exits non-zero on the first failure.
import * as client from 'openid-client';

const [base, clientID, email, password, redirectURI, postLogoutURI, alg] = process.argv.slice(2);
if (!alg) {
  console.error('usage: node oidc.mjs BASE_URL CLIENT_ID EMAIL PASSWORD REDIRECT_URI POST_LOGOUT_URI ALG');
  process.exit(2);
}
const step = (name, data) => console.log(JSON.stringify({ step: name, ok: true, ...data }));

const config = await client.discovery(new URL(base), clientID, { id_token_signed_response_alg: alg }, client.None(),
  { execute: [client.allowInsecureRequests] });
const meta = config.serverMetadata();
if (!meta.supportsPKCE()) throw new Error('discovery does not advertise PKCE S256');
step('discovery', { issuer: meta.issuer, authorization_endpoint: meta.authorization_endpoint });

const verifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const nonce = client.randomNonce();
const authURL = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectURI, scope: 'openid email', state, nonce,
  code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
});
step('authorization_url', { url: authURL.href });

// The browser: a cookie jar over fetch, following tokend's pages by hand.
const jar = new Map();
async function browse(url, init = {}) {
  const headers = new Headers(init.headers);
  if (jar.size) headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '));
  const res = await fetch(url, { ...init, headers, redirect: 'manual' });
  for (const c of res.headers.getSetCookie()) {
    const [pair, ...attrs] = c.split(';');
    const i = pair.indexOf('=');
    const name = pair.slice(0, i).trim(), value = pair.slice(i + 1).trim();
    if (attrs.some((a) => /max-age=(0|-)/i.test(a.trim())) || value === '') jar.delete(name); else jar.set(name, value);
  }
  return res;
}
const page = await browse(authURL);
const html = await page.text();
if (page.status !== 200 || !/name="password"/.test(html)) throw new Error(`login page: ${page.status} ${html.slice(0, 300)}`);
const fields = {};
for (const m of html.matchAll(/<input type="hidden" name="([a-z_]+)" value="([^"]*)">/g)) {
  fields[m[1]] = m[2].replace(/&#43;/g, '+').replace(/&amp;/g, '&').replace(/&#39;/g, "'").replace(/&quot;/g, '"');
}
const action = new URL(html.match(/<form method="post" action="([^"]+)"/)[1], base);
const posted = await browse(action, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ ...fields, email, password, action: 'login' }),
});
const callback = posted.headers.get('location');
if (posted.status !== 303 || !callback) throw new Error(`login form: ${posted.status} ${(await posted.text()).slice(0, 300)}`);
step('login_form', { status: posted.status });

const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
  pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
});
const claims = tokens.claims();
if (!tokens.refresh_token || !claims || claims.aud !== clientID || claims.nonce !== nonce) throw new Error('token response');
step('code_exchange', { sub: claims.sub, sid: claims.sid, amr: claims.amr, alg });

const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
if (info.email !== email) throw new Error(`userinfo email ${info.email}`);
step('userinfo', { email: info.email, email_verified: info.email_verified });

const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
const rclaims = refreshed.claims();
if (refreshed.refresh_token === tokens.refresh_token || !rclaims || rclaims.sub !== claims.sub) throw new Error('refresh');
step('refresh', { sid: rclaims.sid });

// Single sign-on: a second authorization request gets a code at once.
const again = await browse(client.buildAuthorizationUrl(config, {
  redirect_uri: redirectURI, scope: 'openid', state: 's2', nonce: 'n2',
  code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
}));
if (again.status !== 302 || !new URL(again.headers.get('location')).searchParams.get('code')) throw new Error(`SSO: ${again.status}`);
step('single_sign_on', {});

const endURL = client.buildEndSessionUrl(config, {
  id_token_hint: refreshed.id_token, post_logout_redirect_uri: postLogoutURI, state: 'bye',
});
const out = await browse(endURL);
if (out.status !== 302 || out.headers.get('location') !== `${postLogoutURI}?state=bye`) throw new Error(`logout: ${out.status} ${out.headers.get('location')}`);
try {
  await client.refreshTokenGrant(config, refreshed.refresh_token);
  throw new Error('the session survived the logout');
} catch (e) {
  if (!(e instanceof client.ResponseBodyError) || e.error !== 'invalid_grant') throw e;
}
step('logout', {});
