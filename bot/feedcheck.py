"""Checking a feed before it is added (CLI ``feeds add`` and the bot's /addfeed).

A new feed must be an http(s) URL whose host does not resolve to a loopback,
private, link-local or otherwise internal address (unless the operator allows
that, for tests and intranets), and it must be fetched and parsed once,
successfully, with at least one entry, before it is saved.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from .config import PollConfig
from .models import Feed, utcnow


@dataclass
class FeedCheck:
    ok: bool
    message: str  # why not, or a one-line description of what was found
    title: str | None = None
    entries: int = 0
    final_url: str | None = None


def _is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified)


async def address_problem(url: str, allow_private: bool) -> str | None:
    """Why this URL may not be polled, or None when it may."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if parts.scheme not in ("http", "https") or not host:
        return "only http and https URLs can be feeds"
    if parts.username or parts.password:
        return "URLs with a user name or password are not accepted"
    if allow_private:
        return None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port or (443 if parts.scheme == "https" else 80),
                                                             type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return f"cannot resolve {host}: {exc}"
    for info in infos:
        if _is_internal(info[4][0]):
            return (f"{host} resolves to an internal address ({info[4][0]}); "
                    "set [telegram] allow_private_feed_urls = true to allow it")
    return None


async def check_feed(url: str, lang: str, poll: PollConfig, allow_private: bool = False) -> FeedCheck:
    """Validate, fetch once and parse a candidate feed."""
    from .fetch import Fetcher
    from .parse import parse_feed

    problem = await address_problem(url, allow_private)
    if problem:
        return FeedCheck(False, problem)
    probe = Feed(id=0, url=url, name=url, lang=lang)
    async with Fetcher(poll) as fetcher:
        result = await fetcher.fetch(probe)
    if result.error:
        return FeedCheck(False, result.error)
    if result.body is None:
        return FeedCheck(False, f"fetch: no body (HTTP {result.status})")
    final = result.final_url or url
    if final != url:
        problem = await address_problem(final, allow_private)
        if problem:
            return FeedCheck(False, f"redirected to {final}: {problem}")
    parsed = await asyncio.to_thread(parse_feed, result.body, result.headers, final, utcnow())
    if parsed.error:
        return FeedCheck(False, parsed.error)
    if not parsed.entries:
        return FeedCheck(False, "parse: the feed has no entries")
    title = parsed.feed_title or urlsplit(final).hostname
    return FeedCheck(True, f"{title}: {len(parsed.entries)} entries", title=title, entries=len(parsed.entries),
                     final_url=result.permanent_url or url)
