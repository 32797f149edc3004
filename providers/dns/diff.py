"""Expected records against the zone: what is ok, missing, different or in conflict, and a
sync that writes only the differences.

A CNAME excludes every other record at its name (RFC 1034 §3.6.2, RFC 2181 §10.1): both
providers refuse an A/AAAA/MX/TXT next to one (Cloudflare 81054, deSEC "No other RRsets are
allowed alongside CNAME"). So an expected record at a name that holds a CNAME is a
`conflict`, never "missing": the sync either replaces the CNAME (when asked, after
approval) or skips the name, and never sends a write the provider would refuse half-way.
"""
from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from pydantic import ConfigDict

from . import DnsProvider
from .records import DnsRecord, RecordChange
from ..model import Model

__all__ = ["RecordCheck", "Status", "check_records", "conflicts", "check_zone", "plan_sync", "sync_zone"]


class Status(str, Enum):
    OK = "ok"
    MISSING = "missing"
    DIFFERENT = "different"
    CONFLICT = "conflict"  # a CNAME holds the name


class RecordCheck(Model):
    """One expected record and what the zone has at its key."""

    model_config = ConfigDict(frozen=True)

    expected: DnsRecord
    status: Status
    actual: tuple[DnsRecord, ...] = ()  # records at the same key (name, type, TXT kind)
    others: tuple[DnsRecord, ...] = ()  # other records of the same name and type


def check_records(expected: Iterable[DnsRecord],
                  actual: Iterable[DnsRecord]) -> list[RecordCheck]:
    """Compare record by record. A key holding the expected value plus a stale one is
    `different`, as resolvers would hand out both."""
    actual = list(actual)
    return [_check(want, actual) for want in expected]


def _check(want: DnsRecord, actual: list[DnsRecord]) -> RecordCheck:
    if want.type != "CNAME":
        cnames = tuple(r for r in actual if r.name == want.name and r.type == "CNAME")
        if cnames:
            return RecordCheck(expected=want, status=Status.CONFLICT, actual=cnames)
    same_key = tuple(r for r in actual if r.key == want.key)
    others = tuple(r for r in actual
                   if (r.name, r.type) == (want.name, want.type) and r.key != want.key)
    if not same_key:
        status = Status.MISSING
    elif len(same_key) == 1 and same_key[0].same_value(want):
        status = Status.OK
    else:
        status = Status.DIFFERENT
    return RecordCheck(expected=want, status=status, actual=same_key, others=others)


def plan_sync(checks: Iterable[RecordCheck], *,
              replace_cnames: bool = False) -> list[RecordChange]:
    """The changes that make the zone match: a create per missing record, an update per
    different one, and for a conflict a replace of the CNAME (only with `replace_cnames`;
    otherwise the name is skipped). Records that are ok are not touched."""
    changes = []
    for check in checks:
        if check.status is Status.CONFLICT:
            if replace_cnames:
                changes.append(RecordChange(action="replace", record=check.expected,
                                            replaces=check.actual))
            continue
        if check.status is Status.MISSING:
            changes.append(RecordChange(action="create", record=check.expected,
                                        keeps=check.others))
        elif check.status is Status.DIFFERENT:
            changes.append(RecordChange(action="update", record=check.expected,
                                        replaces=check.actual, keeps=check.others))
    return changes


async def check_zone(provider: DnsProvider,
                     expected: Iterable[DnsRecord]) -> list[RecordCheck]:
    """Read the zone (all pages) and compare it with `expected`."""
    return check_records(expected, await provider.list_records())


def conflicts(checks: Iterable[RecordCheck]) -> list[RecordCheck]:
    return [c for c in checks if c.status is Status.CONFLICT]


async def sync_zone(provider: DnsProvider, expected: Iterable[DnsRecord], *,
                    replace_cnames: bool = False) -> list[RecordChange]:
    """Apply only what differs, in one atomic write; returns the changes made (empty when
    all was ok). Conflicting names are skipped unless `replace_cnames`."""
    changes = plan_sync(await check_zone(provider, expected), replace_cnames=replace_cnames)
    if changes:
        await provider.apply(changes)
    return changes
