"""The fakes answer in the shapes the providers document, field by field.

Sources of the expected shapes:
- Hetzner Cloud: https://docs.hetzner.cloud (API reference) and hetznercloud/hcloud-go
  `hcloud/schema/*.go` (server.go, server_type.go, pricing.go, volume.go, image.go,
  action.go, meta.go, error.go), `client_handler_rate_limit.go` (RateLimit-* headers).
- Cloudflare API v4: https://developers.cloudflare.com/api/ and cloudflare/cloudflare-python
  `types/zones/zone.py`, `types/dns/record_response.py`, `pagination.py`.
- deSEC: desec-io/desec-stack `docs/dns/domains.rst`, `docs/dns/rrsets.rst`,
  `docs/rate-limits.rst` and `api/desecapi/pagination.py`.
"""
from __future__ import annotations

import time
from decimal import Decimal

import httpx
import pytest

from tests.fakes.cloudflare_api import FakeCloudflare
from tests.fakes.desec_api import FakeDesec
from tests.fakes.hetzner_api import FakeHetzner

NONE = type(None)
NUMBER = (int, float)


def assert_shape(obj: dict, shape: dict) -> None:
    """`obj` has exactly the keys of `shape`, each of the given type(s)."""
    assert set(obj) == set(shape), set(obj) ^ set(shape)
    for key, kind in shape.items():
        assert isinstance(obj[key], kind), (key, obj[key])


def assert_decimal_string(value: str) -> None:
    assert isinstance(value, str)
    Decimal(value)


# -- Hetzner Cloud -------------------------------------------------------------------------

SERVER = {
    "id": int, "name": str, "status": str, "created": str, "public_net": dict,
    "private_net": list, "server_type": dict, "included_traffic": int,
    "outgoing_traffic": (int, NONE), "ingoing_traffic": (int, NONE),
    "backup_window": (str, NONE), "rescue_enabled": bool, "iso": (dict, NONE), "locked": bool,
    "location": dict, "image": (dict, NONE), "protection": dict, "labels": dict,
    "volumes": list, "primary_disk_size": int, "placement_group": (dict, NONE),
    "load_balancers": list,
}
IPV4 = {"id": int, "ip": str, "blocked": bool, "dns_ptr": str}
IPV6 = {"id": int, "ip": str, "blocked": bool, "dns_ptr": list}
LOCATION = {"id": int, "name": str, "description": str, "country": str, "city": str,
            "latitude": float, "longitude": float, "network_zone": str}
SERVER_TYPE = {
    "id": int, "name": str, "description": str, "category": str, "cores": int,
    "memory": NUMBER, "disk": int, "storage_type": str, "cpu_type": str, "architecture": str,
    "prices": list, "deprecated": bool, "deprecation": (dict, NONE), "locations": list,
}
SERVER_TYPE_PRICE = {"location": str, "price_hourly": dict, "price_monthly": dict,
                     "included_traffic": int, "price_per_tb_traffic": dict}
SERVER_TYPE_LOCATION = {"id": int, "name": str, "deprecation": (dict, NONE),
                        "available": bool, "recommended": bool}
VOLUME = {"id": int, "name": str, "server": (int, NONE), "status": str, "location": dict,
          "size": int, "format": (str, NONE), "protection": dict, "labels": dict,
          "linux_device": str, "created": str}
IMAGE = {"id": int, "status": str, "type": str, "name": (str, NONE), "description": str,
         "image_size": (float, NONE), "disk_size": NUMBER, "created": str,
         "created_from": (dict, NONE), "bound_to": (int, NONE), "os_flavor": str,
         "os_version": (str, NONE), "architecture": str, "rapid_deploy": bool,
         "protection": dict, "deprecated": (str, NONE), "deleted": (str, NONE),
         "labels": dict}
ACTION = {"id": int, "command": str, "status": str, "progress": int, "started": str,
          "finished": (str, NONE), "resources": list, "error": (dict, NONE)}
PAGINATION = {"page": int, "per_page": int, "previous_page": (int, NONE),
              "next_page": (int, NONE), "last_page": int, "total_entries": int}


@pytest.fixture
def hetzner():
    with FakeHetzner() as fake:
        with httpx.Client(base_url=fake.url,
                          headers={"Authorization": f"Bearer {fake.token}"}) as client:
            yield fake, client


def test_hetzner_server(hetzner):
    _, client = hetzner
    server = client.get("/servers/42").json()["server"]
    assert_shape(server, SERVER)
    assert_shape(server["public_net"]["ipv4"], IPV4)
    assert_shape(server["public_net"]["ipv6"], IPV6)
    assert server["public_net"]["ipv6"]["ip"].endswith("/64")
    assert isinstance(server["public_net"]["floating_ips"], list)
    assert_shape(server["location"], LOCATION)
    assert_shape(server["server_type"], SERVER_TYPE)


def test_hetzner_server_type_prices_per_location(hetzner):
    _, client = hetzner
    answer = client.get("/server_types", params={"name": "cx32"}).json()
    (server_type,) = answer["server_types"]
    assert_shape(server_type, SERVER_TYPE)
    for entry in server_type["prices"]:
        assert_shape(entry, SERVER_TYPE_PRICE)
        for price in (entry["price_hourly"], entry["price_monthly"],
                      entry["price_per_tb_traffic"]):
            assert set(price) == {"net", "gross"}
            assert_decimal_string(price["net"])
            assert_decimal_string(price["gross"])
    for entry in server_type["locations"]:
        assert_shape(entry, SERVER_TYPE_LOCATION)
    assert_shape(answer["meta"]["pagination"], PAGINATION)


def test_hetzner_pagination_meta(hetzner):
    fake, client = hetzner
    fake.max_per_page = 1
    first = client.get("/volumes", params={"page": 1, "per_page": 50}).json()
    assert first["meta"]["pagination"] == {"page": 1, "per_page": 1, "previous_page": None,
                                           "next_page": 2, "last_page": 2, "total_entries": 2}
    last = client.get("/volumes", params={"page": 2}).json()["meta"]["pagination"]
    assert (last["previous_page"], last["next_page"]) == (1, None)
    for volume in first["volumes"]:
        assert_shape(volume, VOLUME)
        assert volume["linux_device"] == f"/dev/disk/by-id/scsi-0HC_Volume_{volume['id']}"


def test_hetzner_action_progresses_to_success(hetzner):
    fake, client = hetzner
    started = client.post("/servers/42/actions/reboot")
    assert started.status_code == 201
    action = started.json()["action"]
    assert_shape(action, ACTION)
    assert (action["status"], action["progress"], action["error"]) == ("running", 0, None)
    assert action["resources"] == [{"id": 42, "type": "server"}]
    seen = [client.get(f"/actions/{action['id']}").json()["action"] for _ in range(3)]
    assert [a["status"] for a in seen] == ["running", "success", "success"]
    assert seen[0]["progress"] == 50 and seen[-1]["progress"] == 100
    assert isinstance(seen[-1]["finished"], str)


def test_hetzner_action_error(hetzner):
    fake, client = hetzner
    fake.fail_action("reboot_server", message="host unavailable")
    action_id = client.post("/servers/42/actions/reboot").json()["action"]["id"]
    for _ in range(fake.action_polls):
        action = client.get(f"/actions/{action_id}").json()["action"]
    assert action["status"] == "error"
    assert action["error"] == {"code": "action_failed", "message": "host unavailable"}


def test_hetzner_create_image(hetzner):
    _, client = hetzner
    answer = client.post("/servers/42/actions/create_image",
                         json={"type": "snapshot", "description": "x"}).json()
    assert set(answer) == {"action", "image"}
    assert_shape(answer["image"], IMAGE)
    assert answer["image"]["status"] == "creating" and answer["image"]["type"] == "snapshot"


def test_hetzner_metrics(hetzner):
    _, client = hetzner
    metrics = client.get("/servers/42/metrics", params={
        "type": "cpu,network", "start": "2026-01-01T00:00:00+00:00",
        "end": "2026-01-01T01:00:00+00:00", "step": 60}).json()["metrics"]
    assert set(metrics) == {"start", "end", "step", "time_series"}
    assert set(metrics["time_series"]) == {
        "cpu", "network.0.pps.in", "network.0.pps.out",
        "network.0.bandwidth.in", "network.0.bandwidth.out"}
    values = metrics["time_series"]["cpu"]["values"]
    assert len(values) == 61
    timestamp, value = values[0]
    assert isinstance(timestamp, float) and isinstance(value, str)
    float(value)


def test_hetzner_error_envelope_and_rate_limit_headers(hetzner):
    fake, client = hetzner
    denied = httpx.get(f"{fake.url}/servers", headers={"Authorization": "Bearer wrong"})
    assert denied.status_code == 401
    assert denied.json() == {"error": {"code": "unauthorized",
                                       "message": "unable to authenticate", "details": {}}}
    missing = client.get("/servers/999")
    assert missing.status_code == 404
    assert_shape(missing.json()["error"], {"code": str, "message": str, "details": dict})
    fake.rate_limit(times=1)
    limited = client.get("/servers")
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert limited.headers["RateLimit-Limit"] == "3600"
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert 3590 < int(limited.headers["RateLimit-Reset"]) - time.time() <= 3600
    ok = client.get("/servers")
    assert int(ok.headers["RateLimit-Remaining"]) < 3600


def test_hetzner_quota_refills_one_request_per_second_and_reset_is_the_full_quota(hetzner):
    """docs.hetzner.cloud "Rate Limiting": Reset is when ALL requests are back; one per second."""
    fake, client = hetzner
    fake.exhaust(left=1)
    last = client.get("/servers")
    assert last.status_code == 200 and last.headers["RateLimit-Remaining"] == "0"
    assert 3595 <= int(last.headers["RateLimit-Reset"]) - time.time() <= 3601
    assert client.get("/servers").status_code == 429
    time.sleep(1.05)
    assert client.get("/servers").status_code == 200


def test_hetzner_second_action_while_one_runs_is_locked(hetzner):
    fake, client = hetzner
    first = client.post("/servers/42/actions/reboot")
    assert first.status_code == 201
    again = client.post("/servers/42/actions/reboot")
    assert again.status_code == 423 and again.json()["error"]["code"] == "locked"
    running = client.get("/servers/42/actions", params={"status": "running"}).json()["actions"]
    assert [a["command"] for a in running] == ["reboot_server"]


def test_hetzner_faults(hetzner):
    fake, client = hetzner
    fake.fail(503, "unavailable", "maintenance window", times=2, method="GET")
    assert [client.get("/servers").status_code for _ in range(3)] == [503, 503, 200]
    fake.slow(0.3, times=1)
    with pytest.raises(httpx.ReadTimeout):
        client.get("/servers", timeout=0.1)
    assert client.get("/servers", timeout=1).status_code == 200


# -- Cloudflare ----------------------------------------------------------------------------

ENVELOPE = {"success": bool, "errors": list, "messages": list, "result": (list, dict, NONE)}
RESULT_INFO = {"page": int, "per_page": int, "count": int, "total_count": int,
               "total_pages": int}
ZONE = {"id": str, "name": str, "status": str, "paused": bool, "type": str,
        "development_mode": NUMBER, "name_servers": list,
        "original_name_servers": (list, NONE), "original_registrar": (str, NONE),
        "original_dnshost": (str, NONE), "created_on": str, "modified_on": str,
        "activated_on": (str, NONE), "meta": dict, "owner": dict, "account": dict,
        "permissions": list, "plan": dict}
RECORD = {"id": str, "name": str, "type": str, "content": str, "proxiable": bool,
          "proxied": bool, "ttl": int, "settings": dict, "meta": dict,
          "comment": (str, NONE), "tags": list, "created_on": str, "modified_on": str}


@pytest.fixture
def cloudflare():
    with FakeCloudflare(max_per_page=2) as fake:
        zone_id = fake.add_zone("example.org")
        fake.add_record("example.org", "A", "example.org", "203.0.113.10")
        fake.add_record("example.org", "MX", "example.org", "example.org", priority=10)
        fake.add_record("example.org", "TXT", "example.org", "v=spf1 a mx -all")
        with httpx.Client(base_url=fake.url,
                          headers={"Authorization": f"Bearer {fake.token}"}) as client:
            yield fake, client, zone_id


def test_cloudflare_zone_lookup(cloudflare):
    _, client, zone_id = cloudflare
    body = client.get("/zones", params={"name": "example.org"}).json()
    assert_shape({k: body[k] for k in ENVELOPE}, ENVELOPE)
    assert_shape(body["result_info"], RESULT_INFO)
    (zone,) = body["result"]
    assert_shape(zone, ZONE)
    assert zone["id"] == zone_id and len(zone_id) == 32
    assert client.get("/zones", params={"name": "other.org"}).json()["result"] == []


def test_cloudflare_records_paginate(cloudflare):
    _, client, zone_id = cloudflare
    first = client.get(f"/zones/{zone_id}/dns_records", params={"per_page": 100}).json()
    assert first["result_info"] == {"page": 1, "per_page": 2, "count": 2, "total_count": 3,
                                    "total_pages": 2}
    second = client.get(f"/zones/{zone_id}/dns_records", params={"page": 2}).json()
    assert second["result_info"]["count"] == 1
    records = first["result"] + second["result"]
    for record in records:
        shape = dict(RECORD, priority=int) if record["type"] == "MX" else RECORD
        assert_shape(record, shape)
    assert {r["name"] for r in records} == {"example.org"}


def test_cloudflare_create_update_delete(cloudflare):
    fake, client, zone_id = cloudflare
    created = client.post(f"/zones/{zone_id}/dns_records", json={
        "type": "A", "name": "cloud.example.org", "content": "203.0.113.10", "ttl": 3600,
        "proxied": False}).json()
    assert created["success"] and created["errors"] == []
    assert_shape(created["result"], RECORD)
    record_id = created["result"]["id"]
    updated = client.put(f"/zones/{zone_id}/dns_records/{record_id}", json={
        "type": "A", "name": "cloud.example.org", "content": "203.0.113.11", "ttl": 3600}).json()
    assert updated["result"]["content"] == "203.0.113.11"
    deleted = client.delete(f"/zones/{zone_id}/dns_records/{record_id}").json()
    assert deleted["result"] == {"id": record_id}


def test_cloudflare_error_envelope(cloudflare):
    fake, client, zone_id = cloudflare
    denied = httpx.get(f"{fake.url}/zones", headers={"Authorization": "Bearer wrong"})
    assert denied.status_code == 403
    assert denied.json() == {"success": False, "errors": [{"code": 10000,
                                                           "message": "Authentication error"}],
                             "messages": [], "result": None}
    duplicate = client.post(f"/zones/{zone_id}/dns_records", json={
        "type": "A", "name": "example.org", "content": "203.0.113.10"})
    assert duplicate.status_code == 400
    assert duplicate.json()["errors"] == [{"code": 81058,
                                           "message": "An identical record already exists."}]
    invalid = client.post(f"/zones/{zone_id}/dns_records", json={
        "type": "MX", "name": "example.org", "content": "mail.example.org"}).json()
    assert invalid["errors"][0]["code"] == 1004
    assert invalid["errors"][0]["error_chain"][0]["code"] == 9101


# -- deSEC ---------------------------------------------------------------------------------

DOMAIN = {"created": str, "keys": list, "minimum_ttl": int, "name": str, "published": str,
          "touched": str}
KEY = {"dnskey": str, "ds": list, "flags": int, "keytype": str}
RRSET = {"created": str, "domain": str, "subname": str, "name": str, "type": str,
         "records": list, "ttl": int, "touched": str}


@pytest.fixture
def desec():
    with FakeDesec(page_size=2) as fake:
        fake.add_domain("example.org")
        fake.add_rrset("example.org", "", "A", ["203.0.113.10"])
        fake.add_rrset("example.org", "", "MX", ["10 example.org."])
        fake.add_rrset("example.org", "www", "AAAA", ["2001:db8::1"])
        with httpx.Client(base_url=fake.url,
                          headers={"Authorization": f"Token {fake.token}"}) as client:
            yield fake, client


def test_desec_domain(desec):
    _, client = desec
    domain = client.get("/domains/example.org/").json()
    assert_shape(domain, DOMAIN)
    assert_shape(domain["keys"][0], KEY)


def test_desec_cursor_pagination(desec):
    _, client = desec
    required = client.get("/domains/example.org/rrsets/")
    assert required.status_code == 400
    assert required.json()["detail"].startswith("Pagination required. You can query up to 2 "
                                                "items at a time (3 total).")
    assert set(required.links) == {"first"}

    first = client.get("/domains/example.org/rrsets/", params={"cursor": ""})
    assert set(first.links) == {"first", "next"}
    assert first.headers["Link"].startswith("<http://127.0.0.1:")
    second = client.get(first.links["next"]["url"])
    assert set(second.links) == {"first", "prev"}
    rrsets = first.json() + second.json()
    for rrset in rrsets:
        assert_shape(rrset, RRSET)
    assert [r["type"] for r in rrsets] == ["AAAA", "MX", "A"]  # newest first
    assert {r["name"] for r in rrsets} == {"example.org.", "www.example.org."}


def test_desec_bulk_patch(desec):
    fake, client = desec
    answer = client.patch("/domains/example.org/rrsets/", json=[
        {"subname": "cloud", "type": "A", "ttl": 3600, "records": ["203.0.113.10"]},
        {"subname": "www", "type": "AAAA", "records": []},
        {"subname": "", "type": "TXT", "ttl": 3600, "records": ['"v=spf1 -all"']}])
    assert answer.status_code == 200
    assert [r["subname"] for r in answer.json()] == ["cloud", ""]
    assert ("www", "AAAA") not in fake.rrsets["example.org"]
    put = client.put("/domains/example.org/rrsets/", json=[
        {"subname": "cloud", "type": "A", "ttl": 3600, "records": ["203.0.113.11"]}])
    assert put.json()[0]["records"] == ["203.0.113.11"]


def test_desec_bulk_errors_are_per_item(desec):
    fake, client = desec
    answer = client.patch("/domains/example.org/rrsets/", json=[
        {"subname": "cloud", "type": "A", "ttl": 3600, "records": ["203.0.113.10"]},
        {"subname": "git", "type": "A", "ttl": 60, "records": ["203.0.113.10"]},
        {"subname": "", "type": "TXT", "ttl": 3600, "records": ["v=spf1 -all"]}])
    assert answer.status_code == 400
    errors = answer.json()
    assert errors[0] == {}
    assert errors[1] == {"ttl": ["Ensure this value is greater than or equal to 3600."]}
    assert list(errors[2]) == ["records"]
    assert ("cloud", "A") not in fake.rrsets["example.org"]  # atomic: nothing written


def test_desec_throttling_and_errors(desec):
    fake, client = desec
    fake.throttle(times=1, retry_after=7)
    throttled = client.get("/domains/example.org/")
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"
    assert throttled.json() == {"detail": "Request was throttled. Expected available in 7 "
                                          "seconds."}
    assert client.get("/domains/example.org/").status_code == 200
    denied = httpx.get(f"{fake.url}/domains/example.org/",
                       headers={"Authorization": "Token wrong"})
    assert (denied.status_code, denied.json()) == (401, {"detail": "Invalid token."})
    unknown = client.get("/domains/example.net/rrsets/", params={"cursor": ""})
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "Not found."})
