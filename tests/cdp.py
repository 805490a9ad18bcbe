"""A small DevTools-protocol driver for headless Chromium: launch, evaluate, wait for the DOM, screenshot.

Speaks the protocol over aiohttp's websocket client (no browser download, no extra dependency). Every wait is
bounded; the browser only ever talks to loopback (its background networking is switched off).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CANDIDATES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--remote-debugging-port=0")
CALL_TIMEOUT = 30.0


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Page:
    """One browser tab over one DevTools websocket; events are kept in order in :attr:`events`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read(), name="cdp-reader")

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(message.data)
                future = self._pending.pop(data["id"], None) if "id" in data else None
                if future is not None and not future.done():
                    future.set_result(data)
                elif "method" in data:
                    self.events.append(data)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the DevTools connection closed"))

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        await self.ws.send_json({"id": number, "method": method, "params": params})
        async with asyncio.timeout(CALL_TIMEOUT):
            answer = await future
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return dict(answer.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        answer = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression!r} raised: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def goto(self, url: str) -> None:
        await self.call("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'")

    async def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Re-evaluate ``expression`` until it is truthy: the page changes as it polls, with no event to await.

        An expression that throws (the element is not drawn yet) counts as not yet true.
        """
        last = ""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        value = await self.evaluate(expression)
                    except RuntimeError as error:
                        value, last = None, str(error)[:300]
                    if value:
                        return value
                    await asyncio.sleep(0.1)
        except TimeoutError:
            text = await self.evaluate("document.body ? document.body.innerText.slice(0, 3000) : ''")
            raise AssertionError(f"not within {timeout:g} s: {expression}\n(last error: {last or 'none'})"
                                 f"\n--- the page shows:\n{text}") from None

    async def text(self, selector: str) -> str:
        return str(await self.evaluate(f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''"))

    async def screenshot(self, path: Path, selector: str = "") -> Path:
        """The whole page, or just the element ``selector`` finds (with a small margin)."""
        clip: dict[str, Any] = {}
        if selector:
            box = await self.evaluate(
                f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                " return [r.left + scrollX, r.top + scrollY, r.width, r.height]; })()")
            x, y, width, height = (float(v) for v in box)
            clip = {"clip": {"x": max(0.0, x - 8), "y": max(0.0, y - 8), "width": width + 16, "height": height + 16,
                             "scale": 1}}
        answer = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, **clip)
        path.write_bytes(base64.b64decode(answer["data"]))
        return path

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def request_headers(self) -> list[tuple[str, dict[str, str]]]:
        return [(e["params"]["request"]["url"], e["params"]["request"].get("headers", {}))
                for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def script_errors(self) -> list[str]:
        """Uncaught exceptions the page's scripts threw."""
        return [str(e["params"]["exceptionDetails"]) for e in self.events if e["method"] == "Runtime.exceptionThrown"]

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def _devtools_port(profile: Path, process: asyncio.subprocess.Process, timeout: float) -> int:
    """Chromium writes the port it chose into DevToolsActivePort; it offers no other signal to wait on."""
    marker = profile / "DevToolsActivePort"
    async with asyncio.timeout(timeout):
        while True:
            if marker.exists():
                lines = marker.read_text().split("\n")
                if lines and lines[0].strip().isdigit():
                    return int(lines[0])
            if process.returncode is not None:
                raise RuntimeError(f"chromium exited with {process.returncode} before it listened")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def chromium(executable: str, workdir: Path, width: int = 1280, height: int = 900,
                   timeout: float = 30.0) -> AsyncIterator[Page]:
    """A headless Chromium with a fresh profile under ``workdir``, and its one page; all of it ends on exit."""
    profile = workdir / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "DevToolsActivePort").unlink(missing_ok=True)  # a reused profile's stale port is not this browser's
    log = (workdir / "chromium.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        executable, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=log)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
    page: Page | None = None
    try:
        try:
            port = await _devtools_port(profile, process, timeout)
        except (TimeoutError, RuntimeError) as error:
            raise RuntimeError(f"chromium did not start ({error}); see {workdir / 'chromium.log'}") from None
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        (target,) = [t for t in targets if t["type"] == "page"][:1]
        ws = await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        page = Page(ws)
        await page.call("Page.enable")
        await page.call("Runtime.enable")
        await page.call("Network.enable")
        await page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                        mobile=False)
        yield page
    finally:
        if page is not None:
            await page.close()
        await session.close()
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()
