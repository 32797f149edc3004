"""One error model (providers/errors.py): every outside API's error says what happened and what to do,
and the execute step (spbot/execute.py) is the one place that turns it into the error reply — the same
text the per-feature `explained()` translations gave before they were removed."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from spbot.execute import Executor
from spbot.jobs import JobRunner
from spbot.providers.b2 import B2Error
from spbot.providers.digitalocean import DigitalOceanError
from spbot.providers.dns import DnsError
from spbot.providers.errors import ProviderError
from spbot.providers.hetzner import HetznerError
from spbot.providers.synapse_admin import UserNotFound
from spbot.providers.usernames import UsernameError, validate_username
from spbot.registry import Registry, command
from spbot.system import children

from .pipeline_kit import Parts, request

NAME_RULES = "Names: 2–31 characters, lowercase a–z, 0–9 and _, starting with a letter."


@pytest.fixture
async def run(tmp_path):
    parts = await Parts(tmp_path).start()
    jobs = JobRunner(parts.store, parts.messenger, parts.config, parts.spawn)
    await jobs.start()
    executor = Executor(parts.messenger, parts.audit, jobs, "!", host=SimpleNamespace())

    async def failing_with(error: Exception):
        registry = Registry()

        @command("fail", help="fails", registry=registry)
        async def fail(ctx):
            raise error
        return await executor.run(request("!fail"), registry.commands["fail"], {})
    yield SimpleNamespace(failing_with=failing_with, parts=parts)
    children.stop_recording()
    await parts.stop()


def test_every_provider_error_is_one_shape():
    for kind in (HetznerError, DigitalOceanError, DnsError, B2Error, UserNotFound, UsernameError):
        assert issubclass(kind, ProviderError)
    with pytest.raises(UsernameError) as caught:
        validate_username("Root")
    assert caught.value.what == str(caught.value) and caught.value.todo == NAME_RULES


@pytest.mark.parametrize("error, body", [
    (HetznerError("Hetzner Cloud rejected the API token. Create a new one."),
     "⚠️ Hetzner Cloud rejected the API token. Create a new one."),
    # DigitalOcean's pair stays on one line, as it always read
    (DigitalOceanError("DigitalOcean rejected the API token: Unable to authenticate you.", "Create one."),
     "⚠️ DigitalOcean rejected the API token: Unable to authenticate you. Create one."),
    (DnsError("deSEC refused the token (401); check [dns] token."), "⚠️ deSEC refused the token (401); check [dns] token."),
    (UserNotFound("@kid:example.org has no account on example.org.", status=404),
     "⚠️ @kid:example.org has no account on example.org."),
    (UsernameError("“Root” has capital letters."), f"⚠️ “Root” has capital letters.\n{NAME_RULES}"),
])
async def test_the_executor_replies_with_a_provider_error_as_it_is(run, error, body):
    result, reply = await run.failing_with(error)
    assert (result, reply.body) == ("failed", body)
    audit = await run.parts.audit_rows()
    assert (audit[-1]["result"], audit[-1]["detail"]) == ("failed", error.what)
