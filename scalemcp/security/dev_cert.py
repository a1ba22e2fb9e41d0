"""``scalemcp dev-cert``: a self-signed certificate for local HTTPS (never for production).

Needs ``cryptography`` (``pip install 'scalemcp[auth]'`` brings it).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import pathlib
import sys

__all__ = ["dev_cert_main", "make_dev_cert"]


def make_dev_cert(directory: pathlib.Path, hosts: list[str], days: int = 30) -> tuple[str, str]:
    """Write ``cert.pem`` and ``key.pem`` (mode 0600) for ``hosts``; returns their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return str(certfile), str(keyfile)


def dev_cert_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scalemcp dev-cert",
                                     description="Write a self-signed certificate for local HTTPS.")
    parser.add_argument("--out", default=".scalemcp-dev-cert", help="directory to write into")
    parser.add_argument("--host", action="append", dest="hosts",
                        help="DNS name or IP for the certificate (repeatable; default: "
                             "localhost, 127.0.0.1, ::1)")
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args(argv)
    try:
        certfile, keyfile = make_dev_cert(pathlib.Path(args.out),
                                          args.hosts or ["localhost", "127.0.0.1", "::1"],
                                          args.days)
    except ImportError:
        print("scalemcp: error: dev-cert needs cryptography: pip install 'scalemcp[auth]'",
              file=sys.stderr)
        return 2
    print(f"scalemcp serve APP --certfile {certfile} --keyfile {keyfile}")
    return 0
