"""The Backblaze B2 provider against b2sdk's own in-memory simulator."""
from __future__ import annotations

import pytest
from b2sdk.v2 import B2HttpApiConfig, RawSimulator

from spbot.providers.b2 import RESTIC_CAPABILITIES, B2Error, B2Provider, make_api
from tests.fakes.b2_simulator import AccountScopedSimulator

BUCKET = "family-backups-3f9a"


@pytest.fixture
def api():
    return make_api(B2HttpApiConfig(_raw_api_class=AccountScopedSimulator))


@pytest.fixture
def sim(api) -> RawSimulator:
    return api.session.raw_api


@pytest.fixture
def master(api, sim) -> B2Provider:
    key_id, key = sim.create_account()
    return B2Provider(key_id, key, api=api)


def bucket_of_another_account(sim: RawSimulator, name: str, bucket_type: str = "allPrivate") -> None:
    account_id, key = sim.create_account()
    token = sim.authorize_account(sim.API_URL, account_id, key)["authorizationToken"]
    sim.create_bucket(sim.API_URL, token, account_id, name, bucket_type)


async def test_ensure_bucket_creates_a_private_bucket_once(master, api):
    first = await master.ensure_bucket(BUCKET)
    second = await master.ensure_bucket(BUCKET)

    assert first.created and not second.created
    assert first.id == second.id
    [bucket] = api.list_buckets()
    assert (bucket.name, bucket.type_) == (BUCKET, "allPrivate")


async def test_ensure_bucket_refuses_a_public_bucket(master, api):
    await master.ensure_bucket(BUCKET)
    api.get_bucket_by_name(BUCKET).set_type("allPublic")

    with pytest.raises(B2Error) as caught:
        await master.ensure_bucket(BUCKET)

    assert caught.value.kind == "not_private"
    assert "Backblaze B2" in str(caught.value) and "private" in str(caught.value)


async def test_ensure_bucket_refuses_a_name_taken_by_another_account(master, sim, api):
    bucket_of_another_account(sim, BUCKET)
    master._authorize()
    assert api.list_buckets(bucket_name=BUCKET) == []   # as the real API: not our bucket, not listed

    with pytest.raises(B2Error) as caught:
        await master.ensure_bucket(BUCKET)   # so create_bucket answers duplicate_bucket_name

    assert caught.value.kind == "name_taken"
    assert "taken by another account" in str(caught.value) and "choose another name" in str(caught.value)


async def test_lifecycle_keeps_deleted_files_for_n_days(master, api):
    await master.ensure_bucket(BUCKET)
    api.get_bucket_by_name(BUCKET).update(lifecycle_rules=[
        {"fileNamePrefix": "logs/", "daysFromHidingToDeleting": 1, "daysFromUploadingToHiding": 7}])

    info = await master.ensure_bucket(BUCKET, keep_deleted_days=30)
    again = await master.keep_deleted_files(BUCKET, 30)

    rules = api.get_bucket_by_name(BUCKET).lifecycle_rules
    by_prefix = {r["fileNamePrefix"]: r for r in rules}
    assert by_prefix[""]["daysFromHidingToDeleting"] == 30
    assert by_prefix["logs/"]["daysFromUploadingToHiding"] == 7  # other rules untouched
    assert len(rules) == 2 and len(info.lifecycle_rules) == 2 and len(again) == 2
    with pytest.raises(ValueError):
        await master.keep_deleted_files(BUCKET, 0)


async def test_restricted_key_is_limited_to_its_bucket(master, api):
    bucket = await master.ensure_bucket(BUCKET)
    await master.ensure_bucket("someone-elses-data")

    key = await master.create_restricted_key(BUCKET, "spbot-restic")

    assert key.bucket_id == bucket.id and key.bucket_name == BUCKET
    assert set(key.capabilities) == set(RESTIC_CAPABILITIES)
    assert {"writeKeys", "writeBuckets", "deleteBuckets"}.isdisjoint(key.capabilities)
    [listed] = [k for k in api.list_keys() if k.id_ == key.key_id]
    assert listed.bucket_id == bucket.id

    # Used as restic would use it: its bucket works, any other is refused.
    restricted = B2Provider(key.key_id, key.key, api=api)
    assert (await restricted.usage(BUCKET)).file_count == 0
    allowed = api.account_info.get_allowed()
    assert allowed["bucketName"] == BUCKET and set(allowed["capabilities"]) == set(RESTIC_CAPABILITIES)
    with pytest.raises(B2Error) as refused:
        await restricted.usage("someone-elses-data")
    assert refused.value.kind == "no_permission"
    with pytest.raises(B2Error):
        await restricted.ensure_bucket("another-bucket-1")
    assert key.key.get_secret_value() not in str(refused.value)


async def test_hide_only_key_has_no_delete(master):
    await master.ensure_bucket(BUCKET)
    key = await master.create_restricted_key(BUCKET, "spbot-restic-hide-only", allow_delete=False)
    assert "deleteFiles" not in key.capabilities


async def test_usage_counts_current_and_hidden_files(master, api):
    await master.ensure_bucket(BUCKET)
    bucket = api.get_bucket_by_name(BUCKET)
    bucket.upload_bytes(b"a" * 1000, "repo/data/00/pack1")
    bucket.upload_bytes(b"b" * 2500, "repo/data/01/pack2")
    bucket.upload_bytes(b"c" * 400, "repo/locks/lock1")
    bucket.hide_file("repo/locks/lock1")

    usage = await master.usage(BUCKET)

    assert (usage.file_count, usage.total_bytes) == (2, 3500)
    assert (usage.stored_versions, usage.stored_bytes) == (3, 3900)


async def test_bad_key_is_explained_without_the_key(api, sim):
    sim.create_account()
    wrong = "K005-not-the-real-key-0123456789"
    provider = B2Provider("account-0", wrong, api=api)

    with pytest.raises(B2Error) as caught:
        await provider.ensure_bucket(BUCKET)

    assert caught.value.kind == "bad_key"
    message = str(caught.value)
    assert message.startswith("Backblaze B2 rejected the application key") and "web console" in message
    assert wrong not in message


async def test_missing_bucket_is_named(master):
    with pytest.raises(B2Error) as caught:
        await master.usage("no-such-bucket-here")
    assert caught.value.kind == "no_bucket" and "no-such-bucket-here" in str(caught.value)
