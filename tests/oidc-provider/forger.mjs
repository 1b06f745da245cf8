// A deliberately broken OpenID Provider for Ayush's tests: it speaks the protocol (discovery,
// JWKS, authorization and token endpoints, userinfo) but signs ID tokens with the defect the
// test asks for (POST /defect with the defect's name), to prove each one is refused.
// Usage: node forger.mjs PORT
import http from 'node:http';
import { generateKeyPair, exportJWK, SignJWT, base64url } from 'jose';

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;
const good = await generateKeyPair('RS256');
const other = await generateKeyPair('RS256');
const jwk = { ...(await exportJWK(good.publicKey)), kid: 'k1', use: 'sig', alg: 'RS256' };
let defect = 'none';
const codes = new Map();

async function idToken(nonce) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: defect === 'wrong_issuer' ? 'http://127.0.0.1:1' : issuer,
    aud: defect === 'wrong_audience' ? 'someone-else' : 'ayush',
    sub: 'sub-mallory',
    preferred_username: 'mallory',
    nonce: defect === 'wrong_nonce' ? 'not-the-nonce' : nonce,
    iat: now,
    exp: defect === 'expired' ? now - 3600 : now + 300,
  };
  if (defect === 'alg_none') {
    const enc = (o) => base64url.encode(JSON.stringify(o));
    return `${enc({ alg: 'none' })}.${enc(claims)}.`;
  }
  const key = defect === 'bad_signature' ? other.privateKey : good.privateKey;
  return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(key);
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

http.createServer(async (req, res) => {
  const url = new URL(req.url, issuer);
  let body = '';
  for await (const chunk of req) body += chunk;
  if (url.pathname === '/defect') {
    defect = body.trim();
    return send(res, 200, { defect });
  }
  if (url.pathname === '/.well-known/openid-configuration') {
    return send(res, 200, {
      issuer, authorization_endpoint: `${issuer}/auth`,
      // An endpoint off loopback, which an air-gapped Ayush must refuse to reach.
      token_endpoint: defect === 'foreign_token_endpoint' ? 'http://192.0.2.10/token' : `${issuer}/token`,
      userinfo_endpoint: `${issuer}/userinfo`, jwks_uri: `${issuer}/jwks`,
      response_types_supported: ['code'], id_token_signing_alg_values_supported: ['RS256'],
    });
  }
  if (url.pathname === '/jwks') return send(res, 200, { keys: [jwk] });
  if (url.pathname === '/auth') {
    const code = `code-${codes.size + 1}`;
    codes.set(code, url.searchParams.get('nonce'));
    const back = new URL(url.searchParams.get('redirect_uri'));
    back.searchParams.set('code', code);
    back.searchParams.set('state', url.searchParams.get('state'));
    return send(res, 302, '', { location: back.toString() });
  }
  if (url.pathname === '/token') {
    const code = new URLSearchParams(body).get('code');
    if (!codes.has(code)) return send(res, 400, { error: 'invalid_grant' });
    return send(res, 200, { access_token: 'at-1', token_type: 'Bearer', id_token: await idToken(codes.get(code)) });
  }
  if (url.pathname === '/userinfo') {
    return send(res, 200, { sub: defect === 'userinfo_sub_mismatch' ? 'sub-someone-else' : 'sub-mallory' });
  }
  send(res, 404, { error: 'not_found' });
}).listen(port, '127.0.0.1', () => console.log(`forger listening on ${port}`));
