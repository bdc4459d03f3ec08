"""The Temporal client over mutual TLS (TEMPORAL_TLS_*; runtime/temporal.py), for real.

A CA, a server certificate (for the name `temporal.test`, not the address dialled: TEMPORAL_TLS_SERVER_NAME) and a
client certificate are made here; a TLS-terminating proxy (ALPN h2, client certificate required) stands in front
of the dev server, as a cluster's frontend with mTLS does. A saga runs end to end through it with the settings;
a client without the client certificate, or without the CA, is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from temporalio.testing import WorkflowEnvironment

from runtime.temporal import connect
from runtime.worker import build_workers
from services.registry import NAMES
from settings import Settings
from tests.workflow.helpers import FaultyService, seed, start_checkout, unique
from workflows.models import CONFIRM, CheckoutStatus, CheckoutView

pytestmark = [pytest.mark.devserver, pytest.mark.slow]

SERVER_NAME = "temporal.test"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *, ca: bool = False, dns: str | None = None, usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    builder = (
        x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns is not None:
        names = [x509.DNSName(dns), x509.IPAddress(ipaddress.ip_address("127.0.0.2"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    path.with_suffix(".pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


@dataclass
class Pki:
    ca: Path
    server: Path
    client: Path
    other_ca: Path


def make_pki(directory: Path) -> Pki:
    """A CA with a server and a client certificate, and an unrelated CA."""
    ca_key, other_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    _write(directory / "ca", _certificate("test CA", ca_key, None, ca=True))
    _write(directory / "other-ca", _certificate("other CA", other_key, None, ca=True))
    _write(directory / "server", _certificate("temporal frontend", server_key, ("test CA", ca_key), dns=SERVER_NAME,
                                              usage=ExtendedKeyUsageOID.SERVER_AUTH), server_key)
    _write(directory / "client", _certificate("booking-saga worker", client_key, ("test CA", ca_key),
                                              usage=ExtendedKeyUsageOID.CLIENT_AUTH), client_key)
    return Pki(directory / "ca.pem", directory / "server", directory / "client", directory / "other-ca.pem")


@dataclass
class MtlsProxy:
    address: str
    clients: list[str]  # the common names of the client certificates it let through


@contextlib.asynccontextmanager
async def mtls_proxy(pki: Pki, upstream: str) -> AsyncIterator[MtlsProxy]:
    """TLS in front of the dev server's plaintext gRPC port: HTTP/2 by ALPN, a client certificate from the CA
    required. It forwards the decrypted bytes unchanged (HTTP/2 either way)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server.with_suffix(".pem"), pki.server.with_suffix(".key"))
    context.load_verify_locations(pki.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    host, port = upstream.rsplit(":", 1)
    seen: list[str] = []
    tasks: set[asyncio.Task[Any]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        certificate = writer.get_extra_info("peercert") or {}
        seen.extend(value for rdn in certificate.get("subject", ()) for key, value in rdn if key == "commonName")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            tasks.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield MtlsProxy(f"127.0.0.1:{server.sockets[0].getsockname()[1]}", seen)
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
async def proxy(dev_server_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[tuple[MtlsProxy, Pki]]:
    pki = make_pki(tmp_path)
    async with mtls_proxy(pki, dev_server_env.client.service_client.config.target_host) as running:
        yield running, pki


def _settings(proxy: MtlsProxy, **tls: str) -> Settings:
    suffix = unique("tls")
    return Settings(temporal_address=proxy.address, temporal_tls_server_name=SERVER_NAME,
                    task_queue_checkout=f"checkout-{suffix}", task_queues={name: f"{name}-{suffix}" for name in NAMES},
                    **tls)


async def test_a_saga_runs_over_mutual_tls(
    proxy: tuple[MtlsProxy, Pki], saga_services: dict[str, FaultyService]
) -> None:
    running, pki = proxy
    settings = _settings(running, temporal_tls_ca=str(pki.ca), temporal_tls_cert=str(pki.client) + ".pem",
                         temporal_tls_key=str(pki.client) + ".key", temporal_api_key="test-api-key")
    client = await connect(settings)
    assert client.service_client.config.api_key == "test-api-key"  # sent as `authorization: Bearer ...`
    workers = build_workers(client, settings, "all", saga_services)  # type: ignore[arg-type]
    async with contextlib.AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        inventory = await seed(saga_services)
        handle, view = await start_checkout(client, settings, inventory.request(seats=1))
        assert view.status == CheckoutStatus.HELD
        confirmed = await handle.execute_update(CONFIRM, result_type=CheckoutView)
        assert confirmed.status == CheckoutStatus.CONFIRMED
    assert "booking-saga worker" in running.clients


@pytest.mark.parametrize("missing", ["client certificate", "CA"])
async def test_a_client_without_its_certificate_or_the_ca_is_refused(
    proxy: tuple[MtlsProxy, Pki], missing: str
) -> None:
    running, pki = proxy
    tls = ({"temporal_tls_ca": str(pki.ca)} if missing == "client certificate" else
           {"temporal_tls_ca": str(pki.other_ca), "temporal_tls_cert": str(pki.client) + ".pem",
            "temporal_tls_key": str(pki.client) + ".key"})
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(connect(_settings(running, **tls)), 60)
    assert running.clients == []
