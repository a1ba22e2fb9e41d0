"""``rediss://``: a redis-server that speaks TLS only and wants client certificates."""

from __future__ import annotations

import datetime
import ipaddress
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import trio

from scalemcp.errors import BackendUnavailable
from tests.harness.redis import RedisServer

from .test_contract import record

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@dataclass
class Pki:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def _pki(tmp: pathlib.Path) -> Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        (tmp / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp / f"{stem}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test ca")).issuer_name(name("test ca"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=True, key_cert_sign=True, crl_sign=True,
              content_commitment=False, key_encipherment=False, data_encipherment=False,
              key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    write("ca", ca, ca_key)

    def leaf(stem: str, san: list[x509.GeneralName]) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(stem)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(san), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        write(stem, cert, key)

    leaf("server", [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    leaf("client", [x509.DNSName("client")])
    return Pki(str(tmp / "ca.crt"), str(tmp / "server.crt"), str(tmp / "server.key"),
               str(tmp / "client.crt"), str(tmp / "client.key"))


@pytest.fixture
def tls_redis(tmp_path: pathlib.Path) -> Iterator[tuple[int, Pki]]:
    pki = _pki(tmp_path)
    server = RedisServer(tls=(
        "--tls-cert-file", pki.server_cert, "--tls-key-file", pki.server_key,
        "--tls-ca-cert-file", pki.ca, "--tls-auth-clients", "yes"))
    try:
        yield server.port, pki
    finally:
        server.stop()


async def test_rediss_with_a_private_ca_and_a_client_certificate(
    tls_redis: tuple[int, Pki],
) -> None:
    from scalemcp.config import Config
    from scalemcp.state.redis import RedisBackend

    port, pki = tls_redis
    url = f"rediss://127.0.0.1:{port}/0"
    with trio.fail_after(15):
        state = RedisBackend.from_config(Config.from_options(
            redis_url=url, redis_ca_file=pki.ca, redis_cert_file=pki.client_cert,
            redis_key_file=pki.client_key))
        async with state.running():
            assert await state.ready()
            await state.create_session(record("tls"))
            assert await state.load_session("tls") is not None
            assert state.statistics().healthy

        # coredis' own ssl_* query arguments in a standalone URL still work (and decide).
        query = (f"?ssl_ca_certs={pki.ca}&ssl_certfile={pki.client_cert}"
                 f"&ssl_keyfile={pki.client_key}&ssl_cert_reqs=required")
        state = RedisBackend(url + query)
        async with state.running():
            assert await state.load_session("tls") is not None

        # The server's certificate is checked: not signed by a CA the client trusts...
        untrusted = RedisBackend(url, cert_file=pki.client_cert, key_file=pki.client_key,
                                 connect_timeout_s=1.0)
        # ... and the client must show one.
        anonymous = RedisBackend(url, ca_file=pki.ca, connect_timeout_s=1.0)
        for state in (untrusted, anonymous):
            async with state.running():
                assert await state.ready() is False
                with pytest.raises(BackendUnavailable):
                    await state.load_session("tls")
