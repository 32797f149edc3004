"""Check the TLS certificate a server presents: days until expiry, issuer, names, or why it fails.

One verified handshake (system trust store, or `ca_file` for tests and private CAs, with SNI and
hostname check). When verification fails a second, unverified handshake fetches the certificate
so the report can still say when it expired and who issued it (this needs the `cryptography`
package; without it those details are left empty).
"""
from __future__ import annotations

import asyncio
import ssl
import time
from datetime import datetime, timezone
from typing import Literal

from pydantic import Field
from spbot.model import Model

ErrorKind = Literal["unreachable", "timeout", "handshake", "verification", "hostname_mismatch",
                    "expired", "not_yet_valid"]

# OpenSSL X509_V_ERR_* codes carried by ssl.SSLCertVerificationError.verify_code
_VERIFY_KINDS: dict[int, ErrorKind] = {9: "not_yet_valid", 10: "expired", 62: "hostname_mismatch"}
_SHORT_NAMES = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
                "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L"}


class CertInfo(Model):
    subject: str
    issuer: str
    sans: list[str] = Field(default_factory=list)
    not_before: datetime
    not_after: datetime


class CertStatus(Model):
    """`ok` means a verified handshake; otherwise `error_kind` says what went wrong."""
    host: str
    port: int
    server_name: str
    ok: bool
    error_kind: ErrorKind | None = None
    error: str | None = None
    cert: CertInfo | None = None
    days_left: float | None = None

    def expires_within(self, days: float) -> bool:
        return self.days_left is not None and self.days_left < days


# --------------------------------------------------------------------------- certificate details

def _info_from_dict(cert: dict) -> CertInfo:
    """From SSLObject.getpeercert() (only filled after verification)."""
    def name(rdns: tuple) -> str:
        return ", ".join(f"{_SHORT_NAMES.get(k, k)}={v}" for rdn in rdns for k, v in rdn)

    return CertInfo(
        subject=name(cert.get("subject", ())), issuer=name(cert.get("issuer", ())),
        sans=[value for _, value in cert.get("subjectAltName", ())],
        not_before=datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notBefore"]), timezone.utc),
        not_after=datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), timezone.utc),
    )


def _info_from_der(der: bytes) -> CertInfo | None:
    """From the raw certificate of an unverified handshake; None without `cryptography`."""
    try:
        from cryptography import x509
    except ImportError:
        return None
    cert = x509.load_der_x509_certificate(der)

    def name(value: x509.Name) -> str:
        return ", ".join(f"{a.rfc4514_attribute_name}={a.value}" for a in value)

    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [*ext.get_values_for_type(x509.DNSName),
                *(str(ip) for ip in ext.get_values_for_type(x509.IPAddress))]
    except x509.ExtensionNotFound:
        sans = []
    return CertInfo(subject=name(cert.subject), issuer=name(cert.issuer), sans=sans,
                    not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc)


def _days_left(info: CertInfo | None, now: float) -> float | None:
    return None if info is None else (info.not_after.timestamp() - now) / 86400


# --------------------------------------------------------------------------- handshakes

async def _handshake(host: str, port: int, context: ssl.SSLContext, server_name: str,
                     timeout: float) -> tuple[dict, bytes | None]:
    """Connect, complete the TLS handshake, close; returns the peer certificate (dict, DER)."""
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context, server_hostname=server_name), timeout)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        return ssl_object.getpeercert() or {}, ssl_object.getpeercert(binary_form=True)
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 2)
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            pass


async def _unverified_info(host: str, port: int, server_name: str, timeout: float) -> CertInfo | None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _, der = await _handshake(host, port, context, server_name, timeout)
    except (OSError, asyncio.TimeoutError):
        return None
    return _info_from_der(der) if der else None


async def check_certificate(host: str, port: int = 443, *, server_name: str | None = None,
                            timeout: float = 10.0, ca_file: str | None = None,
                            now: float | None = None) -> CertStatus:
    """Check the certificate of host:port as a browser would (SNI = server_name or host)."""
    sni = server_name or host
    now = time.time() if now is None else now
    status = CertStatus(host=host, port=port, server_name=sni, ok=False)
    context = ssl.create_default_context(cafile=ca_file)
    try:
        peer, _ = await _handshake(host, port, context, sni, timeout)
    except ssl.SSLCertVerificationError as exc:
        status.error_kind = _VERIFY_KINDS.get(exc.verify_code, "verification")
        status.error = exc.verify_message or str(exc)
        status.cert = await _unverified_info(host, port, sni, timeout)
    except ssl.SSLError as exc:
        status.error_kind, status.error = "handshake", exc.reason or str(exc)
    except asyncio.TimeoutError:
        status.error_kind, status.error = "timeout", f"no TLS answer within {timeout:g}s"
    except OSError as exc:
        status.error_kind, status.error = "unreachable", exc.strerror or str(exc)
    else:
        status.ok = True
        status.cert = _info_from_dict(peer)
    status.days_left = _days_left(status.cert, now)
    return status
