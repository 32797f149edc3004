"""spbot.providers.dns: the expected record set, the diff, and the real httpx code of the Cloudflare
and deSEC providers against the local fakes."""
from __future__ import annotations

import logging
import time

import pytest

from spbot.providers.dns import DnsError, HttpPolicy, make_provider
from spbot.providers.dns.cloudflare import CloudflareDns
from spbot.providers.dns.desec import DesecDns
from spbot.providers.dns.diff import Status, check_records, check_zone, plan_sync, sync_zone
from spbot.providers.dns.records import (
    DnsRecord, DomainConfig, expected_records, quote_txt, relative_name, unquote_txt,
)
from tests.fakes import Fault
from tests.fakes.cloudflare_api import FakeCloudflare
from tests.fakes.desec_api import FakeDesec

DOMAIN = "example.org"
CF_TOKEN = "cf-secret-token-abcdef"
DESEC_TOKEN = "desec-secret-token-abcdef"
OLD_IP = "198.51.100.7"
DKIM = "v=DKIM1; k=rsa; p=" + "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" * 9
CONFIG = DomainConfig(domain=DOMAIN, ipv4="203.0.113.10", ipv6="2001:db8:1234::1",
                      subdomains=("cloud", "git", "password"), dkim=DKIM)
FAST = HttpPolicy(timeout=2.0, max_retries=3, backoff=0.01, max_retry_wait=2.0)
FOREIGN_TXT = "google-site-verification=abc123"


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog):
    caplog.set_level(logging.DEBUG)
    yield
    assert CF_TOKEN not in caplog.text and DESEC_TOKEN not in caplog.text


def drifted_zone() -> list[DnsRecord]:
    """The expected records with drift: `git A` missing, `cloud A` and SPF with an old
    address; plus a foreign TXT at the apex and a www CNAME that are not ours."""
    records = []
    for record in expected_records(CONFIG):
        if (record.name, record.type) == ("git", "A"):
            continue
        if (record.name, record.type) == ("cloud", "A"):
            record = record.model_copy(update={"content": OLD_IP})
        if record.key == ("@", "TXT", "spf"):
            record = record.model_copy(update={"content": f"v=spf1 a mx ip4:{OLD_IP} -all"})
        records.append(record)
    records.append(DnsRecord(name="@", type="TXT", content=FOREIGN_TXT))
    records.append(DnsRecord(name="www", type="CNAME", content=DOMAIN))
    return records


def by_key(checks):
    return {c.expected.key: c for c in checks}


# -- the expected set and the diff ---------------------------------------------------------


def test_expected_records_follow_selfprivacy():
    records = {(r.name, r.type, r.content, r.priority) for r in expected_records(CONFIG)}
    assert ("@", "A", "203.0.113.10", None) in records
    assert ("cloud", "AAAA", "2001:db8:1234::1", None) in records
    assert ("@", "MX", DOMAIN, 10) in records
    assert ("@", "TXT", "v=spf1 a mx ip4:203.0.113.10 -all", None) in records
    assert ("_dmarc", "TXT", "v=DMARC1; p=none", None) in records
    assert ("selector._domainkey", "TXT", DKIM, None) in records
    assert len(records) == 4 * 2 + 4
    assert "matrix" in DomainConfig(domain=DOMAIN, ipv4="203.0.113.10").subdomains

    plain = DomainConfig(domain=DOMAIN, ipv4="203.0.113.10", subdomains=("cloud",), mail=False)
    assert [(r.name, r.type) for r in expected_records(plain)] == [("@", "A"), ("cloud", "A")]
    no_dkim = DomainConfig(domain=DOMAIN, ipv4="203.0.113.10", subdomains=())
    assert not any("_domainkey" in r.name for r in expected_records(no_dkim))
    with pytest.raises(ValueError):
        DomainConfig(domain=DOMAIN, ipv4="2001:db8::1")


def test_record_normal_form():
    record = DnsRecord(name="Cloud.", type="aaaa", content="2001:0db8:1234:0000::0001")
    assert (record.name, record.type, record.content) == ("cloud", "AAAA", "2001:db8:1234::1")
    assert DnsRecord(name="", type="MX", content="Example.ORG.", priority=10).describe() == (
        "@ MX 10 example.org")
    assert relative_name("cloud.example.org.", DOMAIN) == "cloud"
    assert relative_name("example.org", DOMAIN) == "@"
    quoted = quote_txt(DKIM)
    assert all(len(part) <= 257 for part in quoted.split(" "))
    assert unquote_txt(quoted) == DKIM
    assert unquote_txt(quote_txt('say "hi" \\o/')) == 'say "hi" \\o/'


def test_check_and_plan_only_touch_differences():
    checks = by_key(check_records(expected_records(CONFIG), drifted_zone()))
    assert checks[("git", "A", "")].status is Status.MISSING
    assert checks[("cloud", "A", "")].status is Status.DIFFERENT
    assert checks[("cloud", "A", "")].actual[0].content == OLD_IP
    spf = checks[("@", "TXT", "spf")]
    assert spf.status is Status.DIFFERENT and spf.others[0].content == FOREIGN_TXT
    assert sum(c.status is Status.OK for c in checks.values()) == len(checks) - 3

    plan = plan_sync(checks.values())
    assert [(c.action, c.record.name, c.record.type) for c in plan] == [
        ("update", "cloud", "A"), ("create", "git", "A"), ("update", "@", "TXT")]


def test_stale_duplicate_makes_a_record_different():
    actual = [DnsRecord(name="cloud", type="A", content="203.0.113.10"),
              DnsRecord(name="cloud", type="A", content=OLD_IP)]
    (check,) = check_records([DnsRecord(name="cloud", type="A", content="203.0.113.10")], actual)
    assert check.status is Status.DIFFERENT and len(check.actual) == 2


async def test_make_provider():
    async with make_provider("cloudflare", DOMAIN, "t") as cloudflare:
        assert isinstance(cloudflare, CloudflareDns)
    async with make_provider("deSEC", DOMAIN, "t", base_url="http://127.0.0.1:9/api/v1") as desec:
        assert isinstance(desec, DesecDns)
    with pytest.raises(ValueError):
        make_provider("route53", DOMAIN, "t")


# -- Cloudflare ----------------------------------------------------------------------------


@pytest.fixture
def cf_fake():
    with FakeCloudflare(token=CF_TOKEN, max_per_page=3) as fake:
        fake.add_zone(DOMAIN)
        for r in drifted_zone():
            fake.add_record(DOMAIN, r.type, r.fqdn(DOMAIN), r.content, r.ttl, r.priority)
        yield fake


@pytest.fixture
async def cloudflare(cf_fake):
    async with CloudflareDns(DOMAIN, CF_TOKEN, base_url=cf_fake.url, policy=FAST) as dns:
        yield dns


async def test_cloudflare_reads_every_page(cloudflare, cf_fake):
    records = await cloudflare.list_records()
    assert len(records) == len(drifted_zone()) == 13
    assert cf_fake.count("GET", r"/client/v4/zones/\w+/dns_records") == 5
    mx = next(r for r in records if r.type == "MX")
    assert (mx.name, mx.content, mx.priority, len(mx.id)) == ("@", DOMAIN, 10, 32)


async def test_cloudflare_check_shows_drift(cloudflare):
    checks = by_key(await check_zone(cloudflare, expected_records(CONFIG)))
    assert checks[("git", "A", "")].status is Status.MISSING
    assert checks[("cloud", "A", "")].status is Status.DIFFERENT
    assert checks[("@", "TXT", "spf")].status is Status.DIFFERENT
    assert checks[("selector._domainkey", "TXT", "dkim")].status is Status.OK


async def test_cloudflare_sync_applies_only_differences(cloudflare, cf_fake):
    untouched = {r["id"]: r["modified_on"] for r in cf_fake.zone_records(DOMAIN)}
    applied = await sync_zone(cloudflare, expected_records(CONFIG))
    assert len(applied) == 3
    assert cf_fake.count("POST", r".*/dns_records/batch") == 1
    (batch,) = cf_fake.batches
    assert "deletes" not in batch and (len(batch["patches"]), len(batch["posts"])) == (2, 1)

    zone = {(r["name"], r["type"], r["content"]) for r in cf_fake.zone_records(DOMAIN)}
    assert ("git.example.org", "A", "203.0.113.10") in zone
    assert ("cloud.example.org", "A", "203.0.113.10") in zone
    assert ("example.org", "TXT", '"v=spf1 a mx ip4:203.0.113.10 -all"') in zone
    assert ("example.org", "TXT", FOREIGN_TXT) in zone
    assert ("www.example.org", "CNAME", DOMAIN) in zone
    assert not any(OLD_IP in content for _, _, content in zone)
    changed = {r["id"] for r in cf_fake.zone_records(DOMAIN)
               if untouched.get(r["id"]) != r["modified_on"]}
    assert len(changed) == 3  # the new git record and the two updated ones

    assert all(c.status is Status.OK for c in await check_zone(cloudflare,
                                                               expected_records(CONFIG)))
    assert await sync_zone(cloudflare, expected_records(CONFIG)) == []
    assert cf_fake.count("POST", r".*/dns_records/batch") == 1


async def test_cloudflare_sync_removes_a_stale_duplicate(cloudflare, cf_fake):
    cf_fake.add_record(DOMAIN, "A", "cloud.example.org", "203.0.113.10")
    await sync_zone(cloudflare, expected_records(CONFIG))
    cloud = [r["content"] for r in cf_fake.zone_records(DOMAIN)
             if (r["name"], r["type"]) == ("cloud.example.org", "A")]
    assert cloud == ["203.0.113.10"]
    assert len(cf_fake.batches[0].get("deletes", [])) == 1


async def test_cloudflare_token_rejected(cf_fake):
    async with CloudflareDns(DOMAIN, "wrong-token", base_url=cf_fake.url, policy=FAST) as dns:
        with pytest.raises(DnsError) as failure:
            await dns.list_records()
    message = str(failure.value)
    assert message.startswith("Cloudflare refused looking up the zone (10000 Authentication "
                              "error): the token is wrong, or it lacks a permission")
    assert "DNS → Edit for example.org" in message and "wrong-token" not in message


async def test_cloudflare_unknown_zone(cf_fake):
    async with CloudflareDns("example.net", CF_TOKEN, base_url=cf_fake.url, policy=FAST) as dns:
        with pytest.raises(DnsError, match="Cloudflare has no zone “example.net”"):
            await dns.list_records()


async def test_cloudflare_error_envelope_becomes_a_clear_error(cloudflare, cf_fake):
    cf_fake.fail(400, 1004, "DNS Validation Error", method="POST")
    with pytest.raises(DnsError) as failure:
        await sync_zone(cloudflare, expected_records(CONFIG))
    assert str(failure.value) == (
        "Cloudflare refused writing 3 change(s): 1004 DNS Validation Error.")


async def test_cloudflare_rate_limit_and_server_errors_are_retried(cloudflare, cf_fake, caplog):
    cf_fake.fail(429, 971, "Please wait and consider throttling your request speed",
                 headers={"Retry-After": "300"})
    cf_fake.fail(502, 502, "Bad gateway", times=2, method="GET")
    bounded = CloudflareDns(DOMAIN, CF_TOKEN, base_url=cf_fake.url,
                            policy=HttpPolicy(backoff=0.01, max_retry_wait=0.05))
    async with bounded:
        assert len(await bounded.list_records()) == 13
    assert "Cloudflare answered 429; retry 1 of 3 in 0.05 s" in caplog.text
    assert caplog.text.count("Cloudflare answered 502") == 2


async def test_cloudflare_outage_gives_a_clear_error(cloudflare, cf_fake):
    cf_fake.fail(500, 10002, "An unknown error has occurred", times=10)
    with pytest.raises(DnsError) as failure:
        await cloudflare.list_records()
    assert str(failure.value) == (
        "Cloudflare failed while looking up the zone (HTTP 500: 10002 An unknown error has "
        "occurred); check https://www.cloudflarestatus.com and try again later.")
    assert cf_fake.count("GET", "/client/v4/zones") == 4


async def test_cloudflare_slow_answers(cf_fake):
    policy = HttpPolicy(timeout=0.2, max_retries=1, backoff=0.01)
    async with CloudflareDns(DOMAIN, CF_TOKEN, base_url=cf_fake.url, policy=policy) as dns:
        cf_fake.slow(0.5, times=1)
        assert len(await dns.list_records()) == 13
        cf_fake.slow(0.5, times=2)
        dns._zone_id = None
        with pytest.raises(DnsError, match=r"Cloudflare did not answer within 0.2 s while "
                                           r"looking up the zone \(tried 2 times\)"):
            await dns.list_records()


# -- deSEC ---------------------------------------------------------------------------------


def desec_rrsets(records: list[DnsRecord]) -> dict[tuple[str, str], list[str]]:
    rrsets: dict[tuple[str, str], list[str]] = {}
    for r in records:
        value = {"TXT": quote_txt(r.content), "MX": f"{r.priority} {r.content}.",
                 "CNAME": f"{r.content}."}.get(r.type, r.content)
        rrsets.setdefault(("" if r.name == "@" else r.name, r.type), []).append(value)
    return rrsets


@pytest.fixture
def desec_fake():
    with FakeDesec(token=DESEC_TOKEN, page_size=3) as fake:
        fake.add_domain(DOMAIN)
        for (subname, rtype), values in desec_rrsets(drifted_zone()).items():
            fake.add_rrset(DOMAIN, subname, rtype, values)
        yield fake


@pytest.fixture
async def desec(desec_fake):
    async with DesecDns(DOMAIN, DESEC_TOKEN, base_url=desec_fake.url, policy=FAST) as dns:
        yield dns


async def test_desec_reads_every_cursor_page(desec, desec_fake):
    records = await desec.list_records()
    assert sorted(r.describe() for r in records) == sorted(r.describe() for r in drifted_zone())
    assert len(desec_fake.rrsets[DOMAIN]) == 12
    assert desec_fake.count("GET", f"/api/v1/domains/{DOMAIN}/rrsets/") == 4


async def test_desec_check_and_sync_write_one_atomic_patch(desec, desec_fake):
    checks = by_key(await check_zone(desec, expected_records(CONFIG)))
    assert [k for k, c in checks.items() if c.status is not Status.OK] == [
        ("cloud", "A", ""), ("git", "A", ""), ("@", "TXT", "spf")]
    before = {k: dict(v) for k, v in desec_fake.rrsets[DOMAIN].items()}

    applied = await sync_zone(desec, expected_records(CONFIG))
    assert len(applied) == 3
    assert desec_fake.count("PATCH", f"/api/v1/domains/{DOMAIN}/rrsets/") == 1
    after = desec_fake.rrsets[DOMAIN]
    assert after[("git", "A")]["records"] == ["203.0.113.10"]
    assert after[("cloud", "A")]["records"] == ["203.0.113.10"]
    assert sorted(after[("", "TXT")]["records"]) == sorted(
        [f'"{FOREIGN_TXT}"', '"v=spf1 a mx ip4:203.0.113.10 -all"'])
    assert after[("", "TXT")]["ttl"] == 18000
    touched = {k for k in after if k not in before or after[k]["touched"] != before[k]["touched"]}
    assert touched == {("git", "A"), ("cloud", "A"), ("", "TXT")}

    assert await sync_zone(desec, expected_records(CONFIG)) == []
    assert desec_fake.count("PATCH", f"/api/v1/domains/{DOMAIN}/rrsets/") == 1


async def test_desec_honours_retry_after(desec, desec_fake, caplog):
    desec_fake.throttle(times=1, retry_after=1)
    started = time.monotonic()
    assert len(await desec.list_records()) == 13
    assert time.monotonic() - started >= 1.0
    assert "deSEC answered 429; retry 1 of 3 in 1.00 s" in caplog.text


async def test_desec_throttling_that_lasts_gives_a_clear_error(desec_fake):
    desec_fake.throttle(times=10, retry_after=60)
    policy = HttpPolicy(max_retries=2, max_retry_wait=0.01)
    async with DesecDns(DOMAIN, DESEC_TOKEN, base_url=desec_fake.url, policy=policy) as dns:
        with pytest.raises(DnsError) as failure:
            await dns.list_records()
    assert str(failure.value) == (
        "deSEC is still throttling the bot while listing DNS records (Request was throttled. "
        "Expected available in 60 seconds.); try again in 60 s.")


async def test_desec_token_rejected(desec_fake):
    async with DesecDns(DOMAIN, "wrong-token", base_url=desec_fake.url, policy=FAST) as dns:
        with pytest.raises(DnsError, match=r"^deSEC rejected the API token \(Invalid token\.\)"):
            await dns.list_records()


async def test_desec_unknown_domain(desec_fake):
    async with DesecDns("example.net", DESEC_TOKEN, base_url=desec_fake.url,
                        policy=FAST) as dns:
        with pytest.raises(DnsError, match="deSEC has no domain “example.net”"):
            await dns.list_records()


async def test_desec_bulk_validation_errors_are_explained(desec, desec_fake):
    desec_fake.fail(400, [{}, {"ttl": ["Ensure this value is greater than or equal to 3600."]},
                          {}], method="PATCH")
    with pytest.raises(DnsError) as failure:
        await sync_zone(desec, expected_records(CONFIG))
    assert str(failure.value) == ("deSEC refused updating 3 RRsets: RRset 2: ttl: Ensure this "
                                  "value is greater than or equal to 3600.")


async def test_desec_minimum_ttl_is_respected(desec_fake):
    desec_fake.domains[DOMAIN]["minimum_ttl"] = 86400
    async with DesecDns(DOMAIN, DESEC_TOKEN, base_url=desec_fake.url, policy=FAST) as dns:
        await sync_zone(dns, expected_records(CONFIG))
    assert desec_fake.rrsets[DOMAIN][("git", "A")]["ttl"] == 86400


async def test_desec_refuses_a_next_link_to_another_host(desec, desec_fake):
    link = '<http://elsewhere.invalid/api/v1/domains/example.org/rrsets/?cursor=x>; rel="next"'
    desec_fake.add_fault(Fault(200, [], headers={"Link": link}))
    with pytest.raises(DnsError, match="another host"):
        await desec.list_records()


# -- real-service behaviour: CNAME conflicts, atomic writes, TXT escapes, kept fields --------


CNAME_TARGET = "hosting.example.net"


def with_cname_on_cloud(records: list[DnsRecord]) -> list[DnsRecord]:
    """The drifted zone where `cloud` is a CNAME (as a hosting provider once asked for)."""
    kept = [r for r in records if r.name != "cloud"]
    return kept + [DnsRecord(name="cloud", type="CNAME", content=CNAME_TARGET)]


async def test_cloudflare_fake_refuses_an_address_next_to_a_cname(cf_fake):
    cf_fake.add_record(DOMAIN, "CNAME", "shop.example.org", CNAME_TARGET)
    async with CloudflareDns(DOMAIN, CF_TOKEN, base_url=cf_fake.url, policy=FAST) as dns:
        with pytest.raises(DnsError) as failure:
            await dns._request("POST", f"/zones/{await dns.zone_id()}/dns_records", "creating",
                               json={"type": "A", "name": "shop.example.org",
                                     "content": "203.0.113.10", "ttl": 3600})
    assert "81054 A CNAME record with that host already exists" in str(failure.value)


@pytest.fixture
def cf_cname_fake():
    with FakeCloudflare(token=CF_TOKEN, max_per_page=3) as fake:
        fake.add_zone(DOMAIN)
        for r in with_cname_on_cloud(drifted_zone()):
            fake.add_record(DOMAIN, r.type, r.fqdn(DOMAIN), r.content, r.ttl, r.priority)
        yield fake


async def test_cloudflare_cname_is_a_conflict_skipped_or_replaced(cf_cname_fake):
    async with CloudflareDns(DOMAIN, CF_TOKEN, base_url=cf_cname_fake.url, policy=FAST) as dns:
        checks = by_key(await check_zone(dns, expected_records(CONFIG)))
        assert checks[("cloud", "A", "")].status is Status.CONFLICT
        assert checks[("cloud", "AAAA", "")].actual[0].content == CNAME_TARGET

        applied = await sync_zone(dns, expected_records(CONFIG))  # skips cloud, no 400
        assert {(c.record.name, c.record.type) for c in applied} == {("git", "A"),
                                                                      ("@", "TXT")}
        zone = {(r["name"], r["type"]) for r in cf_cname_fake.zone_records(DOMAIN)}
        assert ("cloud.example.org", "CNAME") in zone and ("git.example.org", "A") in zone

        replaced = await sync_zone(dns, expected_records(CONFIG), replace_cnames=True)
        assert [c.action for c in replaced] == ["replace", "replace"]
        assert cf_cname_fake.batches[-1]["deletes"] and len(cf_cname_fake.batches[-1]["posts"]) == 2
        cloud = {r["type"]: r["content"] for r in cf_cname_fake.zone_records(DOMAIN)
                 if r["name"] == "cloud.example.org"}
        assert cloud == {"A": "203.0.113.10", "AAAA": "2001:db8:1234::1"}
        assert all(c.status is Status.OK for c in await check_zone(dns, expected_records(CONFIG)))


async def test_cloudflare_sync_is_all_or_nothing(cloudflare, cf_fake):
    """A CNAME appears at `git` between the check and the write: Cloudflare refuses the
    batch and none of its other changes (the cloud A and SPF updates) lands."""
    before = {r["id"]: r["content"] for r in cf_fake.zone_records(DOMAIN)}
    checks = await check_zone(cloudflare, expected_records(CONFIG))
    cf_fake.add_record(DOMAIN, "CNAME", "git.example.org", CNAME_TARGET)
    with pytest.raises(DnsError) as failure:
        await cloudflare.apply(plan_sync(checks))
    assert "81054" in str(failure.value) and "Nothing was changed" in str(failure.value)
    after = {r["id"]: r["content"] for r in cf_fake.zone_records(DOMAIN) if r["type"] != "CNAME"
             or r["name"] != "git.example.org"}
    assert after == before


async def test_cloudflare_sync_keeps_comment_and_tags(cf_fake):
    cloud = next(r for r in cf_fake.zone_records(DOMAIN) if r["name"] == "cloud.example.org"
                 and r["type"] == "A")
    cf_fake.records[cloud["id"]].update(comment="Nextcloud, do not touch by hand",
                                        tags=["owner:dad"])
    async with CloudflareDns(DOMAIN, CF_TOKEN, base_url=cf_fake.url, policy=FAST) as dns:
        await sync_zone(dns, expected_records(CONFIG))
    after = next(r for r in cf_fake.zone_records(DOMAIN) if r["id"] == cloud["id"])
    assert after["content"] == "203.0.113.10"
    assert (after["comment"], after["tags"]) == ("Nextcloud, do not touch by hand", ["owner:dad"])


async def test_cloudflare_fake_put_wipes_comment_and_tags(cf_fake):
    """The real PUT replaces the whole record; the fake must too, or a PUT-based sync
    would look harmless."""
    record_id = cf_fake.add_record(DOMAIN, "A", "shop.example.org", OLD_IP, comment="mine",
                                   tags=["a:b"])
    async with CloudflareDns(DOMAIN, CF_TOKEN, base_url=cf_fake.url, policy=FAST) as dns:
        await dns._request("PUT", f"/zones/{await dns.zone_id()}/dns_records/{record_id}", "put",
                           json={"type": "A", "name": "shop.example.org",
                                 "content": "203.0.113.10", "ttl": 3600})
    after = next(r for r in cf_fake.zone_records(DOMAIN) if r["id"] == record_id)
    assert (after["comment"], after["tags"]) == (None, [])


async def test_cloudflare_txt_is_sent_quoted(cloudflare, cf_fake):
    await sync_zone(cloudflare, expected_records(CONFIG))
    sent = [p["content"] for p in cf_fake.batches[0]["patches"] if p["type"] == "TXT"]
    assert sent == ['"v=spf1 a mx ip4:203.0.113.10 -all"']
    long = quote_txt(DKIM, escape_bytes=False)
    assert long.startswith('"v=DKIM1') and long.count('" "') == len(DKIM) // 255


async def test_cloudflare_missing_permission_is_named(cf_fake):
    cf_fake.read_only_tokens.add("read-only-token")
    async with CloudflareDns(DOMAIN, "read-only-token", base_url=cf_fake.url,
                             policy=FAST) as dns:
        assert len(await dns.list_records()) == 13
        with pytest.raises(DnsError) as failure:
            await sync_zone(dns, expected_records(CONFIG))
    message = str(failure.value)
    assert "10000 Authentication error" in message and "lacks a permission" in message
    assert "Zone → DNS → Edit for example.org" in message


@pytest.fixture
def desec_cname_fake():
    with FakeDesec(token=DESEC_TOKEN, page_size=3) as fake:
        fake.add_domain(DOMAIN)
        for (subname, rtype), values in desec_rrsets(with_cname_on_cloud(drifted_zone())).items():
            fake.add_rrset(DOMAIN, subname, rtype, values)
        yield fake


async def test_desec_fake_refuses_an_rrset_next_to_a_cname(desec_cname_fake):
    async with DesecDns(DOMAIN, DESEC_TOKEN, base_url=desec_cname_fake.url, policy=FAST) as dns:
        with pytest.raises(DnsError) as failure:
            await dns._request("PATCH", f"/domains/{DOMAIN}/rrsets/", "patching",
                               json=[{"subname": "git", "type": "A", "ttl": 3600,
                                      "records": ["203.0.113.10"]},
                                     {"subname": "cloud", "type": "A", "ttl": 3600,
                                      "records": ["203.0.113.10"]}])
    assert str(failure.value) == (
        "deSEC refused patching: RRset 2: non_field_errors: RRset with conflicting type "
        "present: database (CNAME). (No other RRsets are allowed alongside CNAME.).")
    assert ("git", "A") not in desec_cname_fake.rrsets[DOMAIN]  # atomic: nothing written


async def test_desec_cname_is_a_conflict_skipped_or_replaced(desec_cname_fake):
    async with DesecDns(DOMAIN, DESEC_TOKEN, base_url=desec_cname_fake.url, policy=FAST) as dns:
        checks = by_key(await check_zone(dns, expected_records(CONFIG)))
        assert checks[("cloud", "A", "")].status is Status.CONFLICT
        applied = await sync_zone(dns, expected_records(CONFIG))
        assert {(c.record.name, c.record.type) for c in applied} == {("git", "A"),
                                                                      ("@", "TXT")}
        rrsets = desec_cname_fake.rrsets[DOMAIN]
        assert rrsets[("git", "A")]["records"] == ["203.0.113.10"]  # the rest was synced
        assert rrsets[("cloud", "CNAME")]["records"] == [CNAME_TARGET + "."]

        await sync_zone(dns, expected_records(CONFIG), replace_cnames=True)
        assert ("cloud", "CNAME") not in rrsets
        assert rrsets[("cloud", "AAAA")]["records"] == ["2001:db8:1234::1"]
        assert desec_cname_fake.count("PATCH", f"/api/v1/domains/{DOMAIN}/rrsets/") == 2


async def test_desec_foreign_txt_with_non_ascii_survives_a_sync(desec, desec_fake):
    """deSEC stores `"café ☕"` as `"caf\\195\\169 \\226\\152\\149"`; a sync that rewrites the
    apex TXT RRset (SPF drift) must send the foreign value back unchanged."""
    foreign = "site owner: Zoë Café ☕"
    desec_fake.add_rrset(DOMAIN, "", "TXT", ['"v=spf1 a mx ip4:198.51.100.7 -all"',
                                             f'"{foreign}"'], ttl=18000)
    stored = next(r for r in desec_fake.rrsets[DOMAIN][("", "TXT")]["records"] if "Zo" in r)
    assert stored == '"site owner: Zo\\195\\171 Caf\\195\\169 \\226\\152\\149"'
    records = await desec.list_records()
    assert DnsRecord(name="@", type="TXT", content=foreign).content in {
        r.content for r in records if r.type == "TXT"}
    await sync_zone(desec, expected_records(CONFIG))
    after = desec_fake.rrsets[DOMAIN][("", "TXT")]["records"]
    assert stored in after and '"v=spf1 a mx ip4:203.0.113.10 -all"' in after


def test_txt_escapes_round_trip():
    assert unquote_txt('"caf\\195\\169" "\\"x\\" \\\\ y"') == 'café"x" \\ y'
    assert quote_txt("café") == '"caf\\195\\169"'
    assert quote_txt("café", escape_bytes=False) == '"café"'
    odd = "a\udcff b"  # a byte that is not UTF-8 (surrogateescape)
    assert unquote_txt(quote_txt(odd)) == odd


def test_the_homeserver_name_in_the_zone_is_managed():
    from spbot.features.dns.settings import DnsConfig, with_homeserver
    settings = DnsConfig.model_validate({"provider": "desec", "domain": DOMAIN, "ipv4": "203.0.113.10",
                                         "token": {"env": "UNUSED"}})
    assert "matrix" in settings.subdomains   # a default name now
    delegated = with_homeserver(settings, "https://chat.example.org:8448")
    assert delegated.subdomains[-1] == "chat"
    names = {r.name for r in expected_records(delegated.domain_config())}
    assert {"chat", "matrix", "@"} <= names
    assert with_homeserver(settings, "https://matrix.example.net").subdomains == settings.subdomains
    assert with_homeserver(settings, "http://127.0.0.1:8008").subdomains == settings.subdomains
