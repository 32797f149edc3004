"""DNS records: the record model, its normal form, and the set a SelfPrivacy server needs.

The expected set copies what SelfPrivacy's API declares (selfprivacy_api/services/*:
`get_dns_records`): A/AAAA for the apex and each service subdomain, and for the mail
server an MX at the apex pointing to the domain (priority 10), SPF
`v=spf1 a mx ip4:<ipv4> -all` at the apex, DMARC `v=DMARC1; p=none` at `_dmarc` and the
DKIM key at `selector._domainkey` when there is one.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

from pydantic import ConfigDict, field_validator, model_validator
from ..model import Model

__all__ = [
    "DEFAULT_SUBDOMAINS", "SELFPRIVACY_SUBDOMAINS", "DnsRecord", "DomainConfig",
    "RecordChange", "expected_records", "quote_txt", "relative_name", "unquote_txt",
]

# service -> subdomain, as in selfprivacy_api/utils/default_subdomains.py
SELFPRIVACY_SUBDOMAINS = {
    "bitwarden": "password", "gitea": "git", "jitsi-meet": "meet", "nextcloud": "cloud",
    "ocserv": "vpn", "pleroma": "social", "roundcube": "roundcube",
}
DEFAULT_SUBDOMAINS = ("api", "cloud", "git", "matrix", "meet", "password", "social", "vpn")
HOST_TTL = 3600
TXT_TTL = 18000
TXT_KINDS = (("v=spf1", "spf"), ("v=dmarc1", "dmarc"), ("v=dkim1", "dkim"))
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(\d{3}|.)", re.DOTALL)


class _Model(Model):
    model_config = ConfigDict(frozen=True)


class DnsRecord(_Model):
    """One resource record, in a provider-neutral normal form.

    `name` is relative to the zone ("@" for the apex), lowercase, without trailing dot.
    `content`: addresses canonical, host names lowercase without trailing dot, TXT text
    without quotes (strings joined). MX priority is its own field. `id` is the provider's id
    of an existing record (Cloudflare), not part of the record's value.
    """

    name: str
    type: str
    content: str
    ttl: int = HOST_TTL
    priority: int | None = None
    id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            data["type"] = str(data.get("type", "")).upper()
            data["name"] = _normal_name(str(data.get("name", "")))
            data["content"] = normal_content(data["type"], str(data.get("content", "")))
        return data

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies the record we manage: name, type and, for TXT, its kind
        (spf, dmarc, dkim), so foreign TXT records at the same name are left alone."""
        return self.name, self.type, txt_kind(self.content) if self.type == "TXT" else ""

    def same_value(self, other: DnsRecord) -> bool:
        return (self.content, self.priority) == (other.content, other.priority)

    def fqdn(self, domain: str) -> str:
        return domain if self.name == "@" else f"{self.name}.{domain}"

    def describe(self) -> str:
        """A short human form: `cloud A 203.0.113.10`, `@ MX 10 example.org`."""
        value = f'"{self.content}"' if self.type == "TXT" else self.content
        if self.priority is not None:
            value = f"{self.priority} {value}"
        return f"{self.name} {self.type} {value}"


class RecordChange(_Model):
    """One step of a sync: make `record` exist at its key.

    `replaces` are the records now at that key (with provider ids); `keeps` are other
    records of the same name and type that are not ours and must stay (deSEC writes whole
    RRsets, so it needs them). A `replace` removes the CNAME(s) in `replaces` and creates
    `record` in the same atomic write.
    """

    action: Literal["create", "update", "replace"]
    record: DnsRecord
    replaces: tuple[DnsRecord, ...] = ()
    keeps: tuple[DnsRecord, ...] = ()


class DomainConfig(_Model):
    """What the records derive from."""

    domain: str
    ipv4: str
    ipv6: str | None = None
    subdomains: tuple[str, ...] = DEFAULT_SUBDOMAINS
    mail: bool = True
    dkim: str | None = None  # the TXT value, e.g. "v=DKIM1; k=rsa; p=MIIB..."
    dkim_selector: str = "selector"
    dmarc: str = "v=DMARC1; p=none"

    @field_validator("ipv4")
    @classmethod
    def _is_ipv4(cls, value: str) -> str:
        return str(ipaddress.IPv4Address(value.strip()))

    @field_validator("ipv6")
    @classmethod
    def _is_ipv6(cls, value: str | None) -> str | None:
        return None if value is None else str(ipaddress.IPv6Address(value.strip()))

    @field_validator("domain")
    @classmethod
    def _is_domain(cls, value: str) -> str:
        return _normal_name(value)


def expected_records(config: DomainConfig) -> list[DnsRecord]:
    """The records the server needs, in a stable order."""
    records = []
    for name in ("@", *config.subdomains):
        records.append(DnsRecord(name=name, type="A", content=config.ipv4, ttl=HOST_TTL))
        if config.ipv6:
            records.append(DnsRecord(name=name, type="AAAA", content=config.ipv6,
                                     ttl=HOST_TTL))
    if config.mail:
        records += _mail_records(config)
    return records


def _mail_records(config: DomainConfig) -> list[DnsRecord]:
    records = [
        DnsRecord(name="@", type="MX", content=config.domain, priority=10, ttl=HOST_TTL),
        DnsRecord(name="_dmarc", type="TXT", content=config.dmarc, ttl=TXT_TTL),
        DnsRecord(name="@", type="TXT", content=f"v=spf1 a mx ip4:{config.ipv4} -all",
                  ttl=TXT_TTL),
    ]
    if config.dkim:
        records.append(DnsRecord(name=f"{config.dkim_selector}._domainkey", type="TXT",
                                 content=config.dkim, ttl=TXT_TTL))
    return records


# -- normal form ---------------------------------------------------------------------------


def normal_content(record_type: str, content: str) -> str:
    content = content.strip()
    if record_type in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(content))
        except ValueError:
            return content
    if record_type in ("MX", "CNAME", "NS", "PTR"):
        return content.rstrip(".").lower()
    if record_type == "TXT":
        return unquote_txt(content)
    return content


def _normal_name(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    return name or "@"


def relative_name(fqdn: str, domain: str) -> str:
    """`cloud.example.org.` in zone `example.org` -> `cloud`; the apex -> `@`."""
    fqdn, domain = _normal_name(fqdn), _normal_name(domain)
    if fqdn == domain:
        return "@"
    suffix = "." + domain
    return fqdn[: -len(suffix)] if fqdn.endswith(suffix) else fqdn


def txt_kind(content: str) -> str:
    lowered = content.lower()
    for prefix, kind in TXT_KINDS:
        if lowered.startswith(prefix):
            return kind
    return ""


def unquote_txt(content: str) -> str:
    """`"v=DKIM1; p=MII" "Bg..."` -> `v=DKIM1; p=MIIBg...`; unquoted text stays as is.

    Escapes follow RFC 1035 §5.1: `\\X` is X and `\\DDD` is the byte DDD (decimal). deSEC
    hands TXT back in dnspython's canonical form, every byte outside printable ASCII as
    `\\DDD`, so `"caf\\195\\169"` is `café`. Bytes that are not UTF-8 survive the round trip
    through quote_txt (surrogateescape)."""
    content = content.strip()
    if not content.startswith('"'):
        return content
    raw = b"".join(_unescape(part) for part in _QUOTED.findall(content))
    return raw.decode("utf-8", "surrogateescape")


def _unescape(part: str) -> bytes:
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(part):
        out += part[position:match.start()].encode("utf-8", "surrogateescape")
        escaped = match.group(1)
        out += bytes([int(escaped)]) if len(escaped) == 3 and escaped.isdigit() and \
            int(escaped) < 256 else escaped.encode("utf-8", "surrogateescape")
        position = match.end()
    out += part[position:].encode("utf-8", "surrogateescape")
    return bytes(out)


def quote_txt(text: str, chunk: int = 255, *, escape_bytes: bool = True) -> str:
    """TXT presentation format: quoted strings of at most 255 bytes each.

    With `escape_bytes` (deSEC) every byte outside printable ASCII is written `\\DDD`, the
    form deSEC stores, so what we send equals what it hands back. Without it (Cloudflare)
    non-ASCII text stays as it is; strings are never cut inside a character."""
    raw = text.encode("utf-8", "surrogateescape")
    parts = [raw[i: i + chunk] for i in range(0, len(raw), chunk)] if escape_bytes \
        else _char_chunks(text, chunk)
    return " ".join('"' + _escape(part, escape_bytes) + '"' for part in parts or [b""])


def _char_chunks(text: str, limit: int) -> list[bytes]:
    chunks: list[bytes] = []
    current = b""
    for char in text:
        encoded = char.encode("utf-8", "surrogateescape")
        if len(current) + len(encoded) > limit:
            chunks.append(current)
            current = b""
        current += encoded
    return chunks + [current] if current or not chunks else chunks


def _escape(part: bytes, escape_bytes: bool) -> str:
    if not escape_bytes:
        text = part.decode("utf-8", "surrogateescape")
        return text.replace("\\", "\\\\").replace('"', '\\"')
    out = []
    for byte in part:
        if byte in b'"\\':
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)
