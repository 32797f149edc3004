"""What a command sees: who asked, where, and narrow accessors to the parts it may use (its feature's
service, approvals, jobs, the registry, policies, the audit log). Commands never touch Matrix events.

`Request` and `UserError` live in spbot/request.py and are re-exported here (commands import them from
spbot.context)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .render import Reply
from .request import Request, UserError

if TYPE_CHECKING:
    from .feature import F
    from .registry import CommandSpec, Policy

__all__ = ["Context", "Request", "UserError"]


@dataclass
class Context:
    # The whole runtime: kept for the commands not yet moved to the accessors below (commands/trust.py,
    # commands/upgrade.py); new code uses the accessors.
    bot: Any
    request: Request
    spec: "CommandSpec"
    args: dict[str, Any]
    job: Any = None

    @property
    def sender(self) -> str:
        return self.request.sender

    @property
    def config(self):
        return self.bot.config

    @property
    def store(self):
        return self.bot.store

    def feature(self, kind: type[F]) -> F:
        """The running service of a feature, e.g. ctx.feature(Backups)."""
        return self.bot.feature(kind)

    async def say(self, reply: Reply) -> int:
        """Post a message (as a reply to the command) besides the final result; returns its local id."""
        return await self.bot.messenger.reply(self.request, reply)

    # --- the core's parts, for the core's own commands --------------------------------------------

    @property
    def approvals(self):
        return self.bot.approvals

    @property
    def jobs(self):
        return self.bot.jobs

    @property
    def registry(self):
        return self.bot.registry

    @property
    def audit(self):
        return self.bot.audit

    def policy_for(self, spec: "CommandSpec") -> "Policy":
        """The configured (or declared) policy of a command."""
        return self.bot.policies.configured(spec)

    # --- for !status -----------------------------------------------------------------------------

    @property
    def scheduler(self):
        return self.bot.scheduler

    @property
    def identity(self) -> tuple[str, str]:
        """The bot's own (user id, device id)."""
        client = self.bot.connection.client
        return client.user_id, client.device_id

    def admin_rooms(self) -> list[str]:
        return self.bot.messenger.admin_rooms()

    def uptime(self) -> float:
        return self.bot.uptime()

    async def messages_waiting(self) -> int:
        return await self.bot.outbox.pending()

    async def status_lines(self) -> list[str]:
        """What the features (and the modules not yet converted to features) add to !status."""
        lines: list[str] = []
        for extra in self.bot.status_sections:
            lines.extend(await extra(self.bot))
        return lines + await self.bot.features.status_lines()
