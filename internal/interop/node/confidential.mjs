// A confidential client of tokend with openid-client: the client
// credentials grant with client_secret_basic, token introspection (RFC
// 7662), and private_key_jwt client authentication with a key registered
// at tokend.
//
//   PRIVATE_JWK='{…}' node confidential.mjs BASE_URL SECRET_CLIENT SECRET KEY_CLIENT
//
// Prints one JSON line per step and exits non-zero on the first failure.
import * as client from 'openid-client';
import { importJWK } from 'jose';

const [base, secretClient, secret, keyClient] = process.argv.slice(2);
if (!keyClient || !process.env.PRIVATE_JWK) {
  console.error('usage: PRIVATE_JWK=… node confidential.mjs BASE_URL SECRET_CLIENT SECRET KEY_CLIENT');
  process.exit(2);
}
const step = (name, data) => console.log(JSON.stringify({ step: name, ok: true, ...data }));
const insecure = { execute: [client.allowInsecureRequests] };

const withSecret = await client.discovery(new URL(base), secretClient, undefined, client.ClientSecretBasic(secret), insecure);
const cc = await client.clientCredentialsGrant(withSecret, { scope: 'email' });
if (!cc.access_token || cc.refresh_token) throw new Error('client credentials');
step('client_credentials', { scope: cc.scope });

const info = await client.tokenIntrospection(withSecret, cc.access_token);
if (info.active !== true || info.client_id !== secretClient || info.sub !== secretClient) throw new Error(`introspection ${JSON.stringify(info)}`);
const junk = await client.tokenIntrospection(withSecret, 'not a token');
if (junk.active !== false) throw new Error('garbage introspected as active');
step('introspection', { active: info.active, token_type: info.token_type });

const jwk = JSON.parse(process.env.PRIVATE_JWK);
const key = await importJWK(jwk, jwk.alg);
const withKey = await client.discovery(new URL(base), keyClient, undefined, client.PrivateKeyJwt({ key, kid: jwk.kid }), insecure);
const signed = await client.clientCredentialsGrant(withKey);
const mine = await client.tokenIntrospection(withKey, signed.access_token);
if (mine.active !== true || mine.client_id !== keyClient) throw new Error(`private_key_jwt introspection ${JSON.stringify(mine)}`);
step('private_key_jwt', { alg: jwk.alg });
