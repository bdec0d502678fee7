#!/usr/bin/env python3
"""Independent JWT implementation for jwt_interop_test.cpp, on the `cryptography` package
(Debian python3-cryptography) and the standard library only.

  mint_tokens.py mint NOW
      Prints a JSON array of {"alg", "pem" | "secret-hex", "token"}, one per algorithm, each
      token with sub "interop-<alg>", roles ["interop"], iat NOW, exp NOW+3600.
  mint_tokens.py verify-hs256 SECRET_HEX TOKEN
      Exits 0 when TOKEN is a valid HS256 JWS for the secret, 1 otherwise.

Exits 3 with a JSON {"error": ...} when `cryptography` is missing.
"""
import base64
import hashlib
import hmac
import json
import os
import sys

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
except ImportError as err:
    print(json.dumps({"error": f"the python3 'cryptography' package is missing ({err})"}))
    sys.exit(3)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_input(alg: str, now: int) -> bytes:
    header = {"alg": alg, "typ": "JWT"}
    claims = {"sub": f"interop-{alg}", "roles": ["interop"], "iat": now, "exp": now + 3600}
    return (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()


def public_pem(private_key) -> str:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def ecdsa_jose(private_key, digest, data: bytes, size: int) -> bytes:
    # cryptography returns DER; JWS wants fixed-width r||s (RFC 7518 section 3.4).
    r, s = decode_dss_signature(private_key.sign(data, ec.ECDSA(digest)))
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def mint_asymmetric(alg: str, key, sign, now: int) -> dict:
    data = signing_input(alg, now)
    token = data.decode() + "." + b64url(sign(key, data))
    return {"alg": alg, "pem": public_pem(key), "token": token}


def mint(now: int) -> list:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size)
    out = [
        mint_asymmetric("RS256", rsa_key,
                        lambda k, d: k.sign(d, padding.PKCS1v15(), hashes.SHA256()), now),
        mint_asymmetric("PS256", rsa_key, lambda k, d: k.sign(d, pss, hashes.SHA256()), now),
    ]
    for alg, curve, digest, size in (("ES256", ec.SECP256R1(), hashes.SHA256(), 32),
                                     ("ES384", ec.SECP384R1(), hashes.SHA384(), 48),
                                     ("ES512", ec.SECP521R1(), hashes.SHA512(), 66)):
        key = ec.generate_private_key(curve)
        out.append(mint_asymmetric(
            alg, key, lambda k, d, dg=digest, n=size: ecdsa_jose(k, dg, d, n), now))
    out.append(mint_asymmetric("EdDSA", ed25519.Ed25519PrivateKey.generate(),
                               lambda k, d: k.sign(d), now))
    secret = os.urandom(64)
    data = signing_input("HS512", now)
    token = data.decode() + "." + b64url(hmac.new(secret, data, hashlib.sha512).digest())
    out.append({"alg": "HS512", "secret-hex": secret.hex(), "token": token})
    return out


def verify_hs256(secret_hex: str, token: str) -> bool:
    head, payload, sig = token.split(".")
    if json.loads(b64url_decode(head)).get("alg") != "HS256":
        return False
    expected = hmac.new(bytes.fromhex(secret_hex), f"{head}.{payload}".encode(), hashlib.sha256)
    return hmac.compare_digest(expected.digest(), b64url_decode(sig))


def main(argv: list) -> int:
    if len(argv) == 3 and argv[1] == "mint":
        print(json.dumps(mint(int(argv[2]))))
        return 0
    if len(argv) == 4 and argv[1] == "verify-hs256":
        return 0 if verify_hs256(argv[2], argv[3]) else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
