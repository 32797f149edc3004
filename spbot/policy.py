"""The policy step: may a command run at once, or does it need a request that other admins approve (or
its requester confirms)? A command's declared policy, replaced by the config's [policies] entry, made
stricter by the command's `policy_when` for the arguments given."""
from __future__ import annotations

from typing import Any

from .config import Config
from .logs import get_logger
from .registry import CommandSpec, Policy, Registry

log = get_logger(__name__)


class Policies:
    def __init__(self, config: Config, registry: Registry):
        self.config = config
        self.registry = registry

    def configured(self, spec: CommandSpec) -> Policy:
        """The declared policy, or the config's [policies] entry for this command."""
        override = self.config.policies.get(spec.name)
        if override is None:
            return spec.policy
        return Policy(approvals=override.approvals, confirm=override.confirm,
                      expires=override.expires if override.expires is not None else spec.policy.expires)

    def for_command(self, spec: CommandSpec, args: dict[str, Any]) -> Policy:
        """The configured (or declared) policy, made stricter by the command's `policy_when`."""
        return spec.policy_for(args, self.configured(spec))

    def warn_about_config(self) -> None:
        """At start: log [policies] entries for unknown commands and dangerous commands left without
        approval."""
        for name in self.config.policies:
            if name not in self.registry.commands:
                log.warning("policy_for_unknown_command", command=name)
        for spec in self.registry.commands.values():
            if spec.dangerous and not self.configured(spec).needs_request:
                log.warning("dangerous_command_without_approval", command=spec.name,
                            hint="set by [policies] in the config")
