"""Recording executables placed first on PATH, for tools that must not really run here: the tests'
stand-ins for apt-get, systemctl and the like, and the dev stack's sandbox (spbot/devsandbox/).

    bins = FakeBin(tmp_path)
    bins.add("apt-get", [
        Rule(match=["update"], stdout="Hit:1 http://deb.debian.org/debian bookworm InRelease\n"),
        Rule(match=["-y", "*"], stdout=..., exit=100, stderr="E: Could not get lock ..."),
    ])
    env = bins.env()            # os.environ with bins.dir first on PATH
    ... run the code under test with env (or monkeypatch PATH) ...
    assert bins.calls("apt-get")[0].argv == ["update"]

Each executable appends one JSON line per call (argv, selected environment, cwd) to a log,
then answers with the first rule whose `match` fits its argv: `*` matches one argument, a trailing
`**` the rest. A rule can sleep (to make a slow command), write files, print the real tool's
output format and exit with any code; or it hands the call to `handler` ("module:function", called
with the argv and the fakebin directory, returning the exit code) for a stand-in that keeps state.
With no matching rule it prints an error and exits 64.
"""
from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

RECORDED_ENV = ("DEBIAN_FRONTEND", "PATH", "LANG", "LC_ALL", "NIX_PATH", "HOME")


@dataclass
class Rule:
    match: list[str] = field(default_factory=lambda: ["**"])
    stdout: str = ""
    stderr: str = ""
    exit: int = 0
    sleep: float = 0.0
    # Lines printed one by one with `line_delay` seconds between them (a streaming log).
    stream: list[str] = field(default_factory=list)
    line_delay: float = 0.0
    # Files to write before answering: {path: content}; a way to show side effects.
    writes: dict[str, str] = field(default_factory=dict)
    # "module:function" answering the call itself: function(argv, base_dir) -> exit code.
    handler: str = ""


@dataclass
class Call:
    tool: str
    argv: list[str]
    env: dict[str, str]
    cwd: str


_SCRIPT = r'''#!{python}
import json, os, sys, time
TOOL = {tool!r}
BASE = {base!r}
argv = sys.argv[1:]
with open(os.path.join(BASE, "calls.jsonl"), "a") as log:
    log.write(json.dumps({{"tool": TOOL, "argv": argv, "cwd": os.getcwd(),
        "env": {{k: os.environ[k] for k in {recorded!r} if k in os.environ}}}}) + "\n")
rules = json.load(open(os.path.join(BASE, TOOL + ".rules.json")))

def fits(pattern, args):
    if pattern and pattern[-1] == "**":
        head = pattern[:-1]
        return len(args) >= len(head) and all(p in ("*", a) for p, a in zip(head, args))
    return len(pattern) == len(args) and all(p in ("*", a) for p, a in zip(pattern, args))

for rule in rules:
    if fits(rule["match"], argv):
        for path, content in rule["writes"].items():
            with open(path, "w") as fh:
                fh.write(content)
        time.sleep(rule["sleep"])
        if rule.get("handler"):
            import importlib
            module, _, function = rule["handler"].partition(":")
            sys.exit(getattr(importlib.import_module(module), function)(argv, BASE))
        sys.stdout.write(rule["stdout"]); sys.stdout.flush()
        for line in rule["stream"]:
            sys.stdout.write(line + "\n"); sys.stdout.flush()
            time.sleep(rule["line_delay"])
        sys.stderr.write(rule["stderr"]); sys.stderr.flush()
        sys.exit(rule["exit"])
sys.stderr.write(TOOL + ": fakebin has no rule for argv " + json.dumps(argv) + "\n")
sys.exit(64)
'''


class FakeBin:
    def __init__(self, root: Path):
        self.dir = Path(root) / "fakebin"
        self.dir.mkdir(parents=True, exist_ok=True)

    def add(self, tool: str, rules: list[Rule]) -> Path:
        """Install (or replace the rules of) a recording executable named `tool`."""
        (self.dir / f"{tool}.rules.json").write_text(json.dumps([asdict(r) for r in rules]))
        path = self.dir / tool
        path.write_text(_SCRIPT.format(python=sys.executable, tool=tool, base=str(self.dir),
                                       recorded=RECORDED_ENV))
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return path

    def path_value(self, base: str | None = None) -> str:
        return f"{self.dir}{os.pathsep}{base if base is not None else os.environ.get('PATH', '')}"

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "PATH": self.path_value(), **extra}

    def calls(self, tool: str | None = None) -> list[Call]:
        log = self.dir / "calls.jsonl"
        if not log.exists():
            return []
        calls = [Call(**json.loads(line)) for line in log.read_text().splitlines() if line]
        return [c for c in calls if tool is None or c.tool == tool]

    def clear(self) -> None:
        (self.dir / "calls.jsonl").unlink(missing_ok=True)
