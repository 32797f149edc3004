"""Certificate checks against real TLS servers on 127.0.0.1 with certificates made by trustme."""
from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from datetime import datetime, timedelta, timezone

import pytest
import trustme

from spbot.system.tls import check_certificate

NOW = datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def ca():
    return trustme.CA(organization_name="Family CA")


@pytest.fixture(scope="module")
def ca_file(ca, tmp_path_factory):
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@contextlib.asynccontextmanager
async def tls_server(cert: trustme.LeafCert):
    """A TLS server on a free loopback port presenting `cert`; yields the port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)

    async def answer(reader, writer):
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def plain_server(greeting: bytes | None):
    """A TCP server that writes `greeting` and closes, or (None) says nothing at all."""
    async def answer(reader, writer):
        if greeting is None:
            await reader.read()          # until the client gives up and closes
        else:
            writer.write(greeting)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_valid_certificate(ca, ca_file):
    cert = ca.issue_cert("localhost", "www.localhost", not_after=NOW + timedelta(days=90))
    async with tls_server(cert) as port:
        status = await check_certificate("127.0.0.1", port, server_name="localhost", ca_file=ca_file)
    assert status.ok and status.error_kind is None, status.error
    assert 89 < status.days_left <= 90
    assert not status.expires_within(30) and status.expires_within(100)
    assert status.cert.sans == ["localhost", "www.localhost"]
    assert "Family CA" in status.cert.issuer
    assert status.server_name == "localhost" and status.port == port


async def test_certificate_expiring_in_five_days(ca, ca_file):
    cert = ca.issue_cert("localhost", not_after=NOW + timedelta(days=5))
    async with tls_server(cert) as port:
        status = await check_certificate("127.0.0.1", port, server_name="localhost", ca_file=ca_file)
    assert status.ok
    assert 4.9 < status.days_left <= 5
    assert status.expires_within(14)


async def test_expired_certificate(ca, ca_file):
    cert = ca.issue_cert("localhost", not_before=NOW - timedelta(days=90),
                         not_after=NOW - timedelta(days=3))
    async with tls_server(cert) as port:
        status = await check_certificate("127.0.0.1", port, server_name="localhost", ca_file=ca_file)
    assert not status.ok and status.error_kind == "expired"
    assert "expired" in status.error
    # details still come from an unverified second look
    assert status.cert is not None and -3.1 < status.days_left < -2.9
    assert status.cert.sans == ["localhost"]


async def test_wrong_hostname(ca, ca_file):
    cert = ca.issue_cert("cloud.example.org", not_after=NOW + timedelta(days=60))
    async with tls_server(cert) as port:
        status = await check_certificate("127.0.0.1", port, server_name="localhost", ca_file=ca_file)
    assert not status.ok and status.error_kind == "hostname_mismatch"
    assert "localhost" in status.error
    assert status.cert.sans == ["cloud.example.org"] and 59 < status.days_left <= 60


async def test_untrusted_issuer(ca):
    cert = ca.issue_cert("localhost", not_after=NOW + timedelta(days=60))
    async with tls_server(cert) as port:
        status = await check_certificate("127.0.0.1", port, server_name="localhost")  # system CAs
    assert not status.ok and status.error_kind == "verification"
    assert "Family CA" in status.cert.issuer


async def test_closed_port_is_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    status = await check_certificate("127.0.0.1", port, server_name="localhost", timeout=3)
    assert not status.ok and status.error_kind == "unreachable"
    assert status.cert is None and status.days_left is None


async def test_not_tls_is_a_handshake_failure():
    async with plain_server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as port:
        status = await check_certificate("127.0.0.1", port, server_name="localhost", timeout=3)
    assert not status.ok and status.error_kind == "handshake"


async def test_silent_server_times_out():
    async with plain_server(None) as port:
        started = time.monotonic()
        status = await check_certificate("127.0.0.1", port, server_name="localhost", timeout=0.3)
    assert not status.ok and status.error_kind == "timeout"
    assert time.monotonic() - started < 2
