"""The services feature's chat text: unit states, the !services table of enabled services, the details
of one service, its log."""
from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

from spbot.render import Item, Reply, escape, human_bytes, human_duration, items
from spbot.system.services import UnitState

from .docker import ContainerState
from .state import ServiceState

ICONS = {"active": "✅", "failed": "❌", "inactive": "⏹", "activating": "⏳", "deactivating": "⏳",
         "reloading": "🔄"}


def state_text(state: UnitState) -> str:
    if not state.found:
        return "❓ not found"
    icon = ICONS.get(state.active_state, "•")
    detail = f" ({state.sub_state})" if state.sub_state and state.sub_state != state.active_state else ""
    result = f", {state.result}" if state.active_state == "failed" and state.result not in ("", "success") \
        else ""
    return f"{icon} {state.active_state}{detail}{result}"


def when_text(when: datetime | None, zone: ZoneInfo) -> str:
    if when is None:
        return ""
    local = when.astimezone(zone)
    age = human_duration(max(0.0, time.time() - local.timestamp()))
    return f"{local:%Y-%m-%d %H:%M} ({age})"


def since_text(state: UnitState, zone: ZoneInfo) -> str:
    return when_text(state.active_since, zone)


def container_text(state: ContainerState) -> str:
    if not state.found:
        return "❓ no such container"
    icon = "✅" if state.healthy else ("❌" if state.status in ("exited", "dead") else "⚠️")
    health = f", {state.health}" if state.health else ""
    code = f", exit code {state.exit_code}" if state.status == "exited" else ""
    return f"{icon} {state.status}{health}{code}"


def service_word(state: ServiceState) -> str:
    if state.error:
        return "❓ cannot tell"
    if state.down():
        return "❌ down"
    if state.http is not None and not state.http.ok:
        return "⚠️ unhealthy"
    return "✅ running"


def backup_text(ended: float | None, enabled: bool = True) -> str:
    if not enabled:
        return "not backed up"
    return f"{human_duration(max(0.0, time.time() - ended))} ago" if ended else "never"


def services_table(states: list[ServiceState], zone: ZoneInfo, backups: dict[str, str]) -> Reply:
    """One short line per service (a phone shows no six columns): state and since, memory, health, and
    the last backup on the line below."""
    entries = [Item(s.name, [service_word(s) + (f" since {when_text(s.since, zone)}" if s.running else ""),
                             human_bytes(s.memory) if s.memory is not None else "", _short_health(s)],
                    note=f"last backup: {backups[s.name]}" if backups.get(s.name) else "")
               for s in states]
    reply = items("Services:", entries)
    bad = [s.name for s in states if not s.healthy]
    if bad:
        reply = reply + Reply.text(f"Not healthy: {', '.join(bad)}. Details with !service <name>, the log with "
                                   "!service logs <name>.")
    return reply


def _short_health(state: ServiceState) -> str:
    if state.error or state.down():
        return ""
    if state.http is None:
        return "—"
    return state.http.text if state.http.ok else "❌ " + state.http.text


def details(state: ServiceState, zone: ZoneInfo, last_backup: str, extra: list[str] = ()) -> Reply:
    spec = state.spec
    lines = [f"{spec.name}: {spec.description}",
             f"state: {service_word(state)}" + (f" since {when_text(state.since, zone)}" if state.since and
                                                state.running else "")
             + (f" · memory {human_bytes(state.memory)}" if state.memory is not None else ""),
             f"health: {state.health_text()}"]
    for unit in state.units:
        lines.append(f"   unit {unit.unit}: {state_text(unit)}")
    for container in state.containers:
        lines.append(f"   container {container.name}: {container_text(container)}")
    if spec.data_paths:
        lines.append(f"data: {', '.join(map(str, spec.data_paths))}")
    if spec.database:
        lines.append(f"database: {spec.database.describe()}")
    lines.extend(extra)
    lines.append(f"last backup: {last_backup}")
    lines.append(f"more: !service logs {spec.name} · !service restart {spec.name}"
                 + (" · !matrix media" if spec.media_store else ""))
    return Reply.text("\n".join(lines))


def log_reply(name: str, shown: str, head: str) -> Reply:
    if not shown:
        return Reply.text(f"{name}: the log is empty for that time.")
    body = f"Log of {name} ({head}; secrets masked):\n{shown}"
    html = f"<b>Log of {escape(name)}</b> ({escape(head)}; secrets masked):<pre><code>{escape(shown)}</code></pre>"
    return Reply(body, html)
