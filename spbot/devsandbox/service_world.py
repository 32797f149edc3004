"""Stateful stand-ins for systemctl, journalctl and the docker CLI, for the services tests: a small world
of units and containers in one JSON file (`world.json` next to the fakebin directory) that the stand-ins
read and change, answering in the real tools' output formats.

    world = ServiceWorld(tmp_path)
    world.unit("vaultwarden.service", journal=["... started"])
    world.container("synapse", project="matrix", logs=["... listening on 8008"])
    world.install()                    # systemctl, journalctl, docker on world.bins (every call recorded)
    env = world.bins.env()

They change nothing on the machine: a restart only moves the `since` time of the unit or container."""
from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .fakebin import FakeBin, Rule

TOOLS = {"systemctl": "systemctl", "journalctl": "journalctl", "docker": "docker"}
STAMP = "%a %Y-%m-%d %H:%M:%S UTC"


class ServiceWorld:
    def __init__(self, root: Path):
        self.bins = FakeBin(root)
        self.file = Path(root) / "world.json"
        if not self.file.exists():
            self.save({"units": {}, "containers": {}})

    @classmethod
    def of(cls, base: str) -> "ServiceWorld":
        return cls(Path(base).parent)

    def install(self) -> None:
        for tool, handler in TOOLS.items():
            self.bins.add(tool, [Rule(handler=f"{__name__}:{handler}")])

    def load(self) -> dict:
        return json.loads(self.file.read_text())

    def save(self, world: dict) -> None:
        temporary = self.file.with_suffix(".tmp")
        temporary.write_text(json.dumps(world, indent=1))
        os.replace(temporary, self.file)

    def unit(self, name: str, state: str = "active", memory: int = 48 << 20, journal: list[str] = (),
             since: float | None = None) -> None:
        world = self.load()
        world["units"][name] = {"state": state, "since": since or time.time(), "memory": memory,
                                "journal": list(journal)}
        self.save(world)

    def container(self, name: str, status: str = "running", project: str | None = None, health: str = "",
                  memory: str = "48.1MiB", logs: list[str] = ()) -> None:
        world = self.load()
        world["containers"][name] = {"status": status, "started": time.time(), "project": project,
                                     "health": health, "memory": memory, "logs": list(logs)}
        self.save(world)

    def set(self, kind: str, name: str, **values) -> None:
        world = self.load()
        world[kind][name].update(values)
        self.save(world)


# -- systemctl -------------------------------------------------------------------------------------

def _show(name: str, unit: dict | None) -> str:
    if unit is None:
        return (f"Result=success\nMemoryCurrent=[not set]\nId={name}\nLoadState=not-found\n"
                f"ActiveState=inactive\nSubState=dead\nActiveEnterTimestamp=\n")
    state = unit["state"]
    sub = {"active": "waiting" if name.endswith(".timer") else "running", "failed": "failed",
           "inactive": "dead"}.get(state, state)
    since = datetime.fromtimestamp(unit["since"], timezone.utc).strftime(STAMP) if state == "active" else ""
    memory = str(unit["memory"]) if state == "active" and not name.endswith(".timer") else "[not set]"
    return (f"Result={'exit-code' if state == 'failed' else 'success'}\nMemoryCurrent={memory}\nId={name}\n"
            f"LoadState=loaded\nActiveState={state}\nSubState={sub}\nActiveEnterTimestamp={since}\n")


def systemctl(argv: list[str], base: str) -> int:
    world = ServiceWorld.of(base)
    state = world.load()
    units = state["units"]
    action = argv[0] if argv else ""
    names = argv[argv.index("--") + 1:] if "--" in argv else []
    if action == "show":
        print("\n".join(_show(n, units.get(n)) for n in names), end="")
        return 0
    if action == "list-units":
        for name, unit in units.items():
            if unit["state"] == "failed":
                print(f"{name} loaded failed failed {name.split('.')[0]}")
        return 0
    if action in ("start", "stop", "restart"):
        missing = [n for n in names if n not in units]
        if missing:
            print(f"Failed to {action} {missing[0]}: Unit {missing[0]} not found.", file=sys.stderr)
            return 5
        for name in names:
            units[name].update(state="inactive" if action == "stop" else "active", since=time.time())
        world.save(state)
        return 0
    print(f"systemctl stand-in: {action} is not simulated", file=sys.stderr)
    return 1


def journalctl(argv: list[str], base: str) -> int:
    units = ServiceWorld.of(base).load()["units"]
    wanted = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--unit", "-u")]
    count = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("--lines=")), 10)
    lines = [line for name in wanted for line in units.get(name, {}).get("journal", [])]
    if not lines:
        print("-- No entries --")
    for line in lines[-count:]:
        print(line)
    return 0


# -- docker ----------------------------------------------------------------------------------------

def _inspect(name: str, box: dict) -> dict:
    running = box["status"] == "running"
    started = datetime.fromtimestamp(box["started"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
    state = {"Status": box["status"], "Running": running, "Paused": False, "Restarting": False,
             "OOMKilled": False, "Dead": False, "Pid": 4242 if running else 0,
             "ExitCode": 0 if running else 137, "Error": "", "StartedAt": started,
             "FinishedAt": "0001-01-01T00:00:00Z"}
    if box.get("health"):
        state["Health"] = {"Status": box["health"], "FailingStreak": 0, "Log": []}
    labels = {"com.docker.compose.project": box["project"]} if box.get("project") else {}
    return {"Id": f"{abs(hash(name)):064x}"[:64], "Created": started, "Name": f"/{name}", "State": state,
            "RestartCount": 0, "Config": {"Hostname": name[:12], "Labels": labels}}


def docker(argv: list[str], base: str) -> int:
    world = ServiceWorld.of(base)
    state = world.load()
    boxes = state["containers"]
    action, rest = (argv[0], argv[1:]) if argv else ("", [])
    if action == "inspect":
        names = [a for a in rest if not a.startswith("--") and a != "container"]
        print(json.dumps([_inspect(n, boxes[n]) for n in names if n in boxes], indent=4))
        missing = [n for n in names if n not in boxes]
        for name in missing:
            print(f"Error: No such container: {name}", file=sys.stderr)
        return 1 if missing else 0
    if action == "ps":
        label = next((rest[i + 1] for i, a in enumerate(rest[:-1]) if a == "--filter"), "")
        project = label.partition("com.docker.compose.project=")[2]
        for name, box in boxes.items():
            if box.get("project") == project:
                print(name)
        return 0
    if action == "stats":
        for name in (a for a in rest if not a.startswith("-") and a != "{{json .}}"):
            if name in boxes and boxes[name]["status"] == "running":
                print(json.dumps({"BlockIO": "0B / 0B", "CPUPerc": "0.50%", "Container": name[:12],
                                  "ID": name[:12], "MemPerc": "2.41%",
                                  "MemUsage": f"{boxes[name]['memory']} / 1.944GiB", "Name": name,
                                  "NetIO": "1kB / 2kB", "PIDs": "12"}))
        return 0
    if action == "logs":
        name = rest[-1]
        if name not in boxes:
            print(f"Error response from daemon: No such container: {name}", file=sys.stderr)
            return 1
        tail = int(rest[rest.index("--tail") + 1]) if "--tail" in rest else 100
        for line in boxes[name]["logs"][-tail:]:
            print(line, file=sys.stderr if "ERROR" in line else sys.stdout)
        return 0
    if action in ("start", "stop", "restart"):
        for name in rest:
            if name not in boxes:
                print(f"Error response from daemon: No such container: {name}", file=sys.stderr)
                return 1
            boxes[name].update(status="exited" if action == "stop" else "running", started=time.time())
            print(name)
        world.save(state)
        return 0
    print(f"docker stand-in: {action} is not simulated", file=sys.stderr)
    return 1
