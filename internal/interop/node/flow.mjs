// Drives a running tokend the way a Node backend or a mobile app would:
// logs in with the password grant, verifies the access token with jose from
// the JWKS alone (found through discovery), refreshes, verifies the new
// token, and reads /userinfo with it.
//
//   node flow.mjs BASE_URL EMAIL PASSWORD CLIENT_ID
//
// NOW (Unix seconds) sets jose's clock for servers on a fake clock. Prints
// one JSON line per step and exits non-zero on the first failure.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [base, email, password, clientID] = process.argv.slice(2);
if (!base || !email || !password || !clientID) {
  console.error('usage: node flow.mjs BASE_URL EMAIL PASSWORD CLIENT_ID');
  process.exit(2);
}
const currentDate = process.env.NOW ? new Date(Number(process.env.NOW) * 1000) : undefined;
const step = (name, data) => console.log(JSON.stringify({ step: name, ...data }));

async function token(params) {
  const res = await fetch(`${base}/oauth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: clientID, ...params }),
  });
  return { status: res.status, cache: res.headers.get('cache-control'), body: await res.json() };
}

const discovery = await (await fetch(`${base}/.well-known/openid-configuration`)).json();
const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri));
const verify = async (t) => (await jwtVerify(t, jwks, {
  issuer: discovery.issuer, audience: discovery.issuer, typ: 'at+jwt',
  algorithms: ['RS256', 'EdDSA'], requiredClaims: ['sub', 'jti', 'client_id', 'sid'], currentDate,
})).payload;

const login = await token({ grant_type: 'password', username: email, password });
if (login.status !== 200 || login.cache !== 'no-store') throw new Error(`login: ${login.status} ${JSON.stringify(login.body)}`);
const first = await verify(login.body.access_token);
step('login', { ok: true, sub: first.sub, sid: first.sid });

const refreshed = await token({ grant_type: 'refresh_token', refresh_token: login.body.refresh_token });
if (refreshed.status !== 200) throw new Error(`refresh: ${refreshed.status} ${JSON.stringify(refreshed.body)}`);
if (refreshed.body.refresh_token === login.body.refresh_token) throw new Error('refresh did not rotate');
const second = await verify(refreshed.body.access_token);
if (second.sid !== first.sid || second.sub !== first.sub) throw new Error('refreshed token of another session');
step('refresh', { ok: true, sid: second.sid });

const userinfo = await fetch(`${base}/userinfo`, { headers: { Authorization: `Bearer ${refreshed.body.access_token}` } });
const ui = await userinfo.json();
if (userinfo.status !== 200 || ui.sub !== first.sub) throw new Error(`userinfo: ${userinfo.status}`);
step('userinfo', { ok: true, email: ui.email });
