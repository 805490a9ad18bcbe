"""What a web page could make a browser send: Host names an actor answers (DNS rebinding) and cross-site writes (CSRF).

Without MR_API_TOKEN (the default of ``mapreduce local``) nothing else stops a page the user visits from reaching
the public API on 127.0.0.1. Three rules, each a JSON error naming it:

- **Host** (421): the public API and the page answer only Host names that cannot belong to a rebinding page: IP
  addresses (a page served from an address is that address's own origin), ``localhost``, dotless names, the actor's
  own names, Kubernetes Service names, and MR_ALLOWED_HOSTS. Ports are not compared: a rebinding page is told apart
  by its name. Internal routes are not checked here: peers reach them by whatever URL they were given, and
  MR_TOKEN guards them.
- **Cross-site** (403): a request a browser marks ``Sec-Fetch-Site: cross-site`` or ``same-site`` is refused, but
  for a person following a link (a GET navigation); a write whose ``Origin`` is not the Host it was sent to is
  refused too (browsers send Origin on every cross-origin write, ``no-cors`` included).
- **Simple write** (403): a public POST, PUT or PATCH must be one a browser cannot send without asking first (a
  CORS preflight, which this server never grants): a Content-Type other than none, text/plain or a form, or an
  ``Authorization: Bearer`` header. This holds where a browser sends no Origin or Sec-Fetch header.

A request carrying the valid MR_API_TOKEN skips the cross-site and simple-write rules: a browser never attaches a
bearer token by itself, so whoever sent it holds the token.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..core.config import Settings
from ..core.errors import Forbidden, MisdirectedRequest
from .middleware import INTERNAL_PREFIX, Handler, authorized

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The types a page may POST with no preflight (the Fetch standard's CORS-safelisted request Content-Types).
SIMPLE_TYPES = frozenset({"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
OTHER_SITES = frozenset({"cross-site", "same-site"})
LOCAL_NAMES = frozenset({"localhost"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})


@dataclass(frozen=True)
class HostPolicy:
    """The Host names an actor answers: any IP address, dotless name or listed name, or a name under a suffix."""

    names: frozenset[str]
    suffixes: tuple[str, ...]
    any: bool = False

    def allows(self, name: str) -> bool:
        if self.any or name in self.names or "." not in name or name.endswith(self.suffixes):
            return True
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            return False
        return True


def host_policy(settings: Settings) -> HostPolicy:
    """The names ``settings`` imply (its own, its peers' Services, Kubernetes' DNS forms) and MR_ALLOWED_HOSTS."""
    domain = (settings.cluster_domain or "cluster.local").strip(".").lower()
    names = {*LOCAL_NAMES, settings.name.lower(), settings.mapper_host.lower(), settings.reducer_host.lower()}
    for url in (settings.advertise_url, *settings.mapper_urls, *settings.reducer_urls):
        names.add((urlsplit(url).hostname or "").lower())
    if settings.host.lower() not in WILDCARD_BINDS:
        names.add(settings.host.lower())
    suffixes = [".localhost", ".svc", f".svc.{domain}", f".{domain}"]
    if settings.discovery == "dns":  # inside Kubernetes, a Service is also reached as <service>.<namespace>
        suffixes.append(f".{settings.namespace.lower()}")
    given = settings.allowed_hosts
    names.update(n for n in given if not n.startswith("."))
    suffixes.extend(n for n in given if n.startswith("."))
    return HostPolicy(frozenset(names - {""}), tuple(suffixes), any="*" in given)


def host_name(authority: str) -> str:
    """The lower-cased name of a Host value or an Origin's authority, without its port ("" when there is none)."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[:authority.find("]") + 1]
    return authority.partition(":")[0].rstrip(".")


def _origin_authority(origin: str) -> str | None:
    """``host[:port]`` of an Origin header; None for ``null`` or anything that is not an origin."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or "@" in parts.netloc:
        return None
    return parts.netloc.lower()


def _with_port(authority: str, default: str) -> str:
    return authority if ":" in authority.rsplit("]", 1)[-1] else f"{authority}:{default}"


def _same_authority(origin: str, host: str) -> bool:
    """Whether ``origin``'s host and port are the Host the request was sent to (default ports made explicit)."""
    given = _origin_authority(origin)
    if given is None:
        return False
    default = "443" if origin.strip().lower().startswith("https:") else "80"
    return _with_port(given, default) == _with_port(host.strip().lower(), default)


def check_request(request: web.Request, policy: HostPolicy, api_token: str) -> None:
    """Raise the error for the first rule ``request`` breaks (see the module's docstring)."""
    internal = request.path.startswith(INTERNAL_PREFIX)
    host = request.headers.get("Host")
    if not internal and host is not None and not policy.allows(host_name(host)):
        raise MisdirectedRequest(f"this actor does not answer the host name {host_name(host)!r}: a web page reached "
                                 "through a name it controls could read and drive the API (DNS rebinding); if "
                                 "clients really use that name, add it to MR_ALLOWED_HOSTS")
    if api_token and authorized(request, api_token):
        return
    site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    navigation = request.method in ("GET", "HEAD") and request.headers.get("Sec-Fetch-Mode", "") == "navigate"
    if site in OTHER_SITES and not navigation:
        raise Forbidden(f"a request from another site's web page (Sec-Fetch-Site: {site}) is refused: a page must "
                        "not drive this API with the user's browser")
    if request.method not in WRITES:
        return
    origin = request.headers.get("Origin")
    if origin is not None and (host is None or not _same_authority(origin, host)):
        raise Forbidden(f"a {request.method} from the web page of origin {origin[:200]!r} is refused: only a page "
                        "of this actor's own origin (the Host it was sent to) may write")
    if internal or request.method == "DELETE":  # a browser always asks before a DELETE
        return
    kind = request.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if kind in SIMPLE_TYPES and not request.headers.get("Authorization", "").lower().startswith("bearer "):
        shown = kind or "none"
        raise Forbidden(f"a {request.method} with Content-Type {shown} is what any web page can send, so it is "
                        "refused: send an upload as application/octet-stream (curl -H 'Content-Type: "
                        "application/octet-stream' --data-binary @FILE), several files as multipart/mixed (curl "
                        "-H 'Content-Type: multipart/mixed' -F f=@A -F f=@B), a job spec as application/json, or "
                        "add an 'Authorization: Bearer ...' header")


def origin_middleware(policy: HostPolicy, api_token: str) -> Middleware:
    """The rules of this module as a middleware, inside the one that turns errors into JSON."""

    @web.middleware
    async def origin_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        check_request(request, policy, api_token)
        return await handler(request)

    return origin_guard
