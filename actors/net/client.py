"""The peer client: one HTTP session per actor, and CBOR requests to peers with explicit timeouts."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from ..core import wire
from ..core.config import Backoff, Settings
from ..core.errors import (
    Conflict,
    MapReduceError,
    NotFound,
    PayloadTooLarge,
    PeerError,
    Unavailable,
    WireError,
    describe,
)
from ..core.messages import Message, to_wire
from .frames import read_body

CBOR = "application/cbor"
T = TypeVar("T")


class PeerUnreachable(PeerError):
    """No connection to the peer could be opened: nothing was sent, so nothing of the call happened there."""


def peer_error(url: str, exc: BaseException) -> PeerError:
    """The named error for a network failure talking to ``url``."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return PeerUnreachable(f"{url}: {describe(exc)}")
    return PeerError(f"{url}: {describe(exc)}")


class PeerClient:
    """Talks CBOR to other actors with the cluster token; turns every failure into a named error."""

    def __init__(self, session: aiohttp.ClientSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else {}

    def timeout(self, total: float | None = None, read: float | None = None) -> aiohttp.ClientTimeout:
        t = self.settings.timeouts
        return aiohttp.ClientTimeout(total=total, sock_connect=t.connect, sock_read=read)

    async def call(self, url: str, message: Message, cap: int, timeout: float) -> Any:
        """POST one CBOR message, return the decoded CBOR answer; 4xx/5xx become the matching error."""
        body = wire.encode(to_wire(message))
        try:
            async with self.session.post(
                url, data=body, headers={**self.headers, "Content-Type": CBOR}, timeout=self.timeout(total=timeout)
            ) as response:
                return await read_cbor(response, cap, url)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise peer_error(url, exc) from None


async def read_cbor(response: aiohttp.ClientResponse, cap: int, url: str) -> Any:
    if response.status >= 400:
        raise await peer_failure(response, url)
    try:
        body = await read_body(response.content, cap, response.content_length)
    except PayloadTooLarge:
        raise PeerError(f"{url}: answer larger than {cap} bytes") from None
    return wire.decode(body, cap)


async def peer_failure(response: aiohttp.ClientResponse, url: str) -> MapReduceError:
    """The error a peer's 4xx/5xx JSON answer stands for, carrying the peer's own message."""
    raw = await response.content.read(64 * 1024)
    try:
        message = str(json.loads(raw).get("message", ""))
    except (ValueError, AttributeError):
        message = raw[:200].decode("utf-8", "replace")
    text = f"{url} answered {response.status}: {message}"
    if response.status == 409:
        return Conflict(text)
    if response.status == 404:
        return NotFound(text)
    if response.status == 503:
        retry = response.headers.get("Retry-After", "1")
        return Unavailable(text, retry_after=float(retry) if retry.isdigit() else 1.0)
    if response.status in (400, 413):
        return WireError(text)
    return PeerError(text)


async def retrying(
    operation: Callable[[], Awaitable[T]],
    retry_on: tuple[type[BaseException], ...],
    attempts: int,
    deadline: float,
    backoff: Backoff,
) -> T:
    """Run ``operation`` again on the named errors only, with jittered ``backoff``, within attempts and a deadline
    (``backoff`` is the settings' peer_backoff)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except retry_on as exc:
            delay = backoff.pause(attempt, random.uniform(0.5, 1.5))
            if isinstance(exc, Unavailable):
                delay = max(delay, exc.retry_after * random.uniform(0.5, 1.0))
            if attempt == attempts or loop.time() + delay > give_up:
                raise
            await asyncio.sleep(delay)  # backoff between retries, not a wait for a condition
    raise AssertionError("unreachable")


def session_context(key: web.AppKey[aiohttp.ClientSession]) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx that owns the actor's one client session for the app's lifetime."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=256, limit_per_host=64)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            app[key] = session
            yield

    return context
