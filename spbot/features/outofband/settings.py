"""[outofband]: where critical alerts go when the room cannot be reached."""
from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from ...config import Duration, Secret, config_section
from spbot.model import Model


@config_section("outofband")
class OutOfBandSettings(Model):
    """[outofband]: channels outside Matrix (e-mail, ntfy, …) for alerts that cannot reach the room."""
    model_config = ConfigDict(extra="forbid")
    urls: list[Secret] = Field(
        default_factory=list, examples=[[{"file": "/etc/spbot/outofband-email"}, {"env": "SPBOT_NTFY_URL"}]],
        description="Apprise URLs, one secret each (a file's first line or an environment variable), e.g. "
                    "mailtos://user:password@mail.example.org?to=alice@example.org or "
                    "ntfys://token@ntfy.example.org/family-server. Empty: no out-of-band channel.")
    grace: Duration = Field(
        300.0, description="Send through the channels when an alert has not reached the room after this long "
                           "(or the homeserver has been unreachable this long).")
    always: bool = Field(
        False, description="Send every alert of the chosen severity through the channels at once, "
                           "whether or not the room can be reached.")
    severity: Literal["warning", "critical"] = Field(
        "critical", description="The least severe alert that goes out of band.")
    title: str = Field("spbot", description="The title (e-mail subject prefix) of out-of-band messages.")
