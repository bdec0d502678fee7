// Keys, a JWKS and signed tokens made by `jose` (an independent JOSE implementation), for
// test_jwks.py. Reads a JSON spec on stdin:
//   {"keys": [{"kid": "r1", "alg": "RS256"}, ...],
//    "tokens": [{"kid": "r1", "claims": {...}, "sign_with": "r2"?, "alg": "PS256"?}, ...]}
// and prints {"jwks": {"r1": <public JWK>, ...}, "tokens": ["<jwt>", ...]}. A token is signed
// with the key `sign_with` (default: its kid) under `alg` (default: that key's alg), with `kid`
// in its header.
import { exportJWK, generateKeyPair, importJWK, SignJWT } from "jose";

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => { text += chunk; });
  process.stdin.on("end", () => resolve(text));
}));

const privateKeys = {};
const jwks = {};
for (const { kid, alg, crv } of input.keys) {
  const options = { extractable: true };
  if (crv) options.crv = crv;
  const { publicKey, privateKey } = await generateKeyPair(alg, options);
  privateKeys[kid] = { key: privateKey, alg };
  jwks[kid] = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
}

const tokens = [];
for (const { kid, claims, sign_with: signWith, alg: algOverride } of input.tokens) {
  let { key, alg } = privateKeys[signWith ?? kid];
  if (algOverride) {
    // Web Crypto binds a key to its algorithm: the same key material, imported for the other one.
    const { alg: _alg, key_ops: _ops, ...material } = await exportJWK(key);
    key = await importJWK(material, algOverride);
    alg = algOverride;
  }
  tokens.push(await new SignJWT(claims).setProtectedHeader({ alg, kid, typ: "JWT" }).sign(key));
}
process.stdout.write(JSON.stringify({ jwks, tokens }));
