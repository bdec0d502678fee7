"""Test certificates, made at run time with `cryptography`: a CA, server certificates for
127.0.0.1/localhost signed by it, and a key that belongs to none of them.

As a script (for the Node and browser tests): `python3 tls_certs.py DIR` writes ca.pem,
cert.pem and key.pem into DIR.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class TestCA:
    def __init__(self, name: str = "Realtime Test CA"):
        self.key = _key()
        now = _dt.datetime.now(_dt.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (x509.CertificateBuilder()
                     .subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - _dt.timedelta(minutes=5))
                     .not_valid_after(now + _dt.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str, serial: int) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) for 127.0.0.1 and localhost."""
        key = _key()
        now = _dt.datetime.now(_dt.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                .issuer_name(self.cert.subject)
                .public_key(key.public_key())
                .serial_number(serial)
                .not_valid_before(now - _dt.timedelta(minutes=5))
                .not_valid_after(now + _dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([
                    x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                    critical=False)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(self.key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def stray_key() -> bytes:
    return _pem_key(_key())


def serial_of(der: bytes) -> int:
    return x509.load_der_x509_certificate(der).serial_number


def write(path: str, data: bytes):
    with open(path, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    ca = TestCA()
    cert, key = ca.issue("realtime-test", 1)
    write(os.path.join(out, "ca.pem"), ca.pem())
    write(os.path.join(out, "cert.pem"), cert)
    write(os.path.join(out, "key.pem"), key)
