"""A reverse proxy in front of the test Synapse that passes every request through, except the ones a test
arms it to fail: a real client (the bot's nio) talks to a real homeserver, and one request of the kind
the test names is answered with a gateway error instead, as a reverse proxy under load does.

    proxy = await FaultProxy(synapse.url).start()
    proxy.fail_next("/sendToDevice/m.room.encrypted/", containing=alice.device_id)
    ... the bot runs with SPBOT_HOMESERVER=proxy.url ...
    assert proxy.failed == 1
"""
from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp import web

from spbot.devstack import free_port

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "content-encoding", "connection"}


@dataclass
class Fault:
    path_part: str
    containing: str
    times: int
    swallow: bool = False            # answer 200 and pass nothing on (a message lost after it was taken)


class FaultProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.faults: list[Fault] = []
        self.failed = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def fail_next(self, path_part: str, containing: str = "", times: int = 1) -> None:
        """Answer the next `times` requests whose path has `path_part` (and whose body has `containing`)
        with 502 Bad Gateway, without passing them on."""
        self.faults.append(Fault(path_part, containing, times))

    def swallow_next(self, path_part: str, containing: str = "", times: int = 1) -> None:
        """Answer the next `times` such requests with 200 {} without passing them on: the sender believes
        they arrived (a to-device message the recipient's store then lost)."""
        self.faults.append(Fault(path_part, containing, times, swallow=True))

    async def start(self) -> "FaultProxy":
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)   # long polls end at once
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = self._armed(request.path, body)
        if fault is not None:
            self.failed += 1
            if fault.swallow:
                return web.json_response({})
            return web.json_response({"errcode": "M_UNKNOWN", "error": "bad gateway (fault proxy)"}, status=502)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(request.method, self.upstream + request.path_qs, data=body,
                                         headers=headers, allow_redirects=False) as upstream:
            payload = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
            return web.Response(status=upstream.status, body=payload, headers=out)

    def _armed(self, path: str, body: bytes) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.path_part in path and fault.containing.encode() in body:
                fault.times -= 1
                return fault
        return None
