"""Expected records against the zone: what is ok, missing or different, and a sync that
writes only the differences."""
from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from pydantic import BaseModel, ConfigDict

from . import DnsProvider
from .records import DnsRecord, RecordChange

__all__ = ["RecordCheck", "Status", "check_records", "check_zone", "plan_sync", "sync_zone"]


class Status(str, Enum):
    OK = "ok"
    MISSING = "missing"
    DIFFERENT = "different"


class RecordCheck(BaseModel):
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


def plan_sync(checks: Iterable[RecordCheck]) -> list[RecordChange]:
    """The changes that make the zone match: a create per missing record, an update per
    different one. Records that are ok are not touched."""
    changes = []
    for check in checks:
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


async def sync_zone(provider: DnsProvider,
                    expected: Iterable[DnsRecord]) -> list[RecordChange]:
    """Apply only what differs; returns the changes made (empty when all was ok)."""
    changes = plan_sync(await check_zone(provider, expected))
    if changes:
        await provider.apply(changes)
    return changes
