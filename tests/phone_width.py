"""Replies as a phone shows them: each `formatted_body` rendered in headless Chromium (Debian's
`chromium`) 400 px wide, styled like a chat client's timeline, measured for horizontal overflow and
kept as a screenshot.

Chromium runs with `--remote-debugging-port`; this speaks the DevTools protocol over its websocket
(aiohttp, already a dependency of matrix-nio): one browser for every reply, no extra test dependency.
"""
from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp

WIDTH = 400
# A chat client's message tile on a phone: the default sans-serif font, an avatar gutter on the left,
# tables and lists as browsers draw them (no fixed widths), long words wrapped as in Element's timeline.
STYLE = """
html, body { margin: 0; padding: 0; }
body { font-family: sans-serif; font-size: 15px; line-height: 1.45; color: #17191c; background: #fff; }
.tile { padding: 6px 10px 6px 52px; overflow-wrap: break-word; }
.tile table { border-collapse: collapse; margin: 4px 0; }
.tile th, .tile td { border: 1px solid #d0d4da; padding: 2px 6px; text-align: left; vertical-align: top; }
.tile code { font-family: monospace; font-size: 0.92em; background: #f2f4f6; border-radius: 3px; padding: 0 2px; }
.tile ul, .tile ol { margin: 4px 0; padding-left: 22px; }
.tile pre { white-space: pre-wrap; }
"""
PAGE = f"<!doctype html><html><head><meta charset='utf-8'><style>{STYLE}</style></head>" \
       "<body><div class='tile' id='message'></div></body></html>"
# Sets the message, then lists what is wider than the screen: the document, any element whose content
# is wider than its box, and any element whose box ends right of the message tile.
MEASURE = """
(html) => {
  const tile = document.getElementById('message');
  tile.innerHTML = html;
  const doc = document.documentElement;
  const right = tile.getBoundingClientRect().right;
  const found = [];
  if (doc.scrollWidth > doc.clientWidth)
    found.push(`document: scrollWidth ${doc.scrollWidth} > clientWidth ${doc.clientWidth}`);
  for (const el of [tile, ...tile.querySelectorAll('*')]) {
    const box = el.getBoundingClientRect();
    const name = el.tagName.toLowerCase() + ' "' + (el.textContent || '').slice(0, 60) + '"';
    if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth)
      found.push(`${name}: scrollWidth ${el.scrollWidth} > clientWidth ${el.clientWidth}`);
    else if (box.width > 0 && box.right > right + 0.5)
      found.push(`${name}: ends at ${Math.round(box.right)} px, the message at ${Math.round(right)} px`);
  }
  return JSON.stringify({found, height: Math.ceil(tile.getBoundingClientRect().bottom)});
}
"""


@dataclass
class Rendered:
    name: str
    overflows: list[str]
    screenshot: Path


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium and one page, driven over the DevTools protocol."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.profile = tempfile.TemporaryDirectory(prefix="spbot-chromium-")
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.next_id = 0

    async def __aenter__(self) -> "Browser":
        self.process = await asyncio.create_subprocess_exec(
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
            f"--window-size={WIDTH},800", "--remote-debugging-port=0",
            f"--user-data-dir={self.profile.name}", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        url = await asyncio.wait_for(self._devtools_url(), 60)
        port = re.search(r":(\d+)/", url).group(1)
        self.http = aiohttp.ClientSession()
        async with self.http.get(f"http://127.0.0.1:{port}/json/list") as response:
            pages = [t for t in await response.json() if t["type"] == "page"]
        self.ws = await self.http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call("Emulation.setDeviceMetricsOverride",
                        width=WIDTH, height=800, deviceScaleFactor=1, mobile=False)
        await self.call("Page.enable")
        await self.call("Page.navigate", url="data:text/html;base64," + base64.b64encode(PAGE.encode()).decode())
        await self._wait_event("Page.loadEventFired")
        return self

    async def _devtools_url(self) -> str:
        while True:
            line = (await self.process.stderr.readline()).decode()
            if not line:
                raise RuntimeError("chromium exited before it listened for DevTools")
            if "DevTools listening on " in line:
                asyncio.get_running_loop().create_task(self._drain())
                return line.split("DevTools listening on ", 1)[1].strip()

    async def _drain(self) -> None:
        while await self.process.stderr.readline():
            pass

    async def __aexit__(self, *exc) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.http is not None:
            await self.http.close()
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()
        self.profile.cleanup()

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        mine = self.next_id
        await self.ws.send_json({"id": mine, "method": method, "params": params})
        while True:
            message = json.loads((await self.ws.receive()).data)
            if message.get("id") == mine:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def _wait_event(self, method: str) -> None:
        while True:
            message = json.loads((await self.ws.receive()).data)
            if message.get("method") == method:
                return

    async def render(self, name: str, html: str, out_dir: Path) -> Rendered:
        result = await self.call("Runtime.evaluate", expression=f"({MEASURE})({json.dumps(html)})",
                                 returnByValue=True)
        measured = json.loads(result["result"]["value"])
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                               clip={"x": 0, "y": 0, "width": WIDTH, "height": max(measured["height"], 1),
                                     "scale": 1})
        path = out_dir / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return Rendered(name, measured["found"], path)


async def render_all(replies: list[tuple[str, str]], out_dir: Path) -> list[Rendered]:
    """Every (name, formatted_body) rendered and measured; screenshots in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    async with Browser() as browser:
        return [await browser.render(safe_name(name), html, out_dir) for name, html in replies]


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80] or "reply"


def read_recorded(path: Path) -> list[tuple[str, str]]:
    """The replies the test clients recorded (tests/conftest.py), one JSON object per line."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(f"recorded-{i:04d}-{row['body'][:40]}", row["formatted_body"]) for i, row in enumerate(rows)]


if __name__ == "__main__":      # check a recording: python -m tests.phone_width replies.jsonl [out dir]
    import sys
    found = asyncio.run(render_all(read_recorded(Path(sys.argv[1])),
                                   Path(sys.argv[2] if len(sys.argv) > 2 else "phone-width")))
    bad = [r for r in found if r.overflows]
    for r in bad:
        print(f"{r.name}: " + "; ".join(r.overflows[:3]))
    print(f"{len(found)} replies rendered at {WIDTH} px, {len(bad)} overflow")
    sys.exit(1 if bad else 0)
