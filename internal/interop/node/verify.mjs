// Verifies tokend access tokens with jose, knowing only the JWKS URL, the
// issuer and the audience, as a Node resource server would.
//
//   node verify.mjs JWKS_URL ISSUER AUDIENCE TOKEN...
//
// NOW (Unix seconds) in the environment sets the verifier's clock, so tests
// with a fake clock can check expiry. Prints one JSON line per token: {"ok":true,"alg":…,"sub":…} or
// {"ok":false,"error":…}. Exits 0 when every token was processed.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [jwksURL, issuer, audience, ...tokens] = process.argv.slice(2);
if (!jwksURL || !issuer || !audience || tokens.length === 0) {
  console.error('usage: node verify.mjs JWKS_URL ISSUER AUDIENCE TOKEN...');
  process.exit(2);
}
const jwks = createRemoteJWKSet(new URL(jwksURL));
for (const token of tokens) {
  try {
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer,
      audience,
      typ: 'at+jwt',
      algorithms: ['RS256', 'EdDSA'],
      requiredClaims: ['sub', 'exp', 'iat', 'jti', 'client_id'],
      currentDate: process.env.NOW ? new Date(Number(process.env.NOW) * 1000) : undefined,
    });
    console.log(JSON.stringify({ ok: true, alg: protectedHeader.alg, kid: protectedHeader.kid, sub: payload.sub, client_id: payload.client_id }));
  } catch (err) {
    console.log(JSON.stringify({ ok: false, error: String(err.code || err.message) }));
  }
}
