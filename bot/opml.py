"""OPML import and export: the subscription-list format feed readers exchange.

Pure functions on bytes; no I/O. :func:`parse_opml` reads OPML 1.0/2.0 (nested
folders of any depth) into feed dicts ``{"url", "name", "lang"}``;
:func:`export_opml` writes OPML 2.0. Parsing goes through defusedxml with DTDs
forbidden, so no entity is expanded and nothing external is fetched.

    feeds = parse_opml(Path("subscriptions.opml").read_bytes(), default_lang="ru")
    Path("feeds.opml").write_bytes(export_opml(feeds))
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as StdET
from datetime import datetime
from email.utils import format_datetime
from typing import Any, Iterable
from urllib.parse import urlsplit

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from .errors import NewsBotError
from .models import LANGS, utcnow

MAX_BYTES = 5 * 1024 * 1024  # a subscription list of tens of thousands of feeds fits easily
MAX_DEPTH = 32  # folders inside folders

# Language names and codes seen in the wild, mapped to ours. "kz" is the country
# code, but people write it for the language often enough to accept it.
_LANG_ALIASES = {
    "en": "en", "eng": "en", "english": "en",
    "ru": "ru", "rus": "ru", "russian": "ru", "русский": "ru",
    "kk": "kk", "kaz": "kk", "kz": "kk", "kazakh": "kk", "қазақша": "kk", "қазақ": "kk",
}
_LANG_ATTRS = ("language", "lang", "{http://www.w3.org/XML/1998/namespace}lang")
# Characters XML 1.0 cannot carry at all (most C0 controls, surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LANG_NAMES = {"en": "English", "ru": "Russian", "kk": "Kazakh"}


class OPMLError(NewsBotError, ValueError):
    """The OPML document cannot be used; the message says where and why."""


def _fold(text: str | None) -> str:
    return " ".join((text or "").split())


def normalise_lang(value: str | None) -> str | None:
    """``"ru-RU"`` -> ``"ru"``, ``"Kazakh"`` -> ``"kk"``; None when empty; ValueError when unknown."""
    text = _fold(value).lower()
    if not text:
        return None
    for candidate in (text, re.split(r"[-_ ]", text)[0]):
        if candidate in _LANG_ALIASES:
            return _LANG_ALIASES[candidate]
    raise ValueError(f"language {value!r} is not one of " + ", ".join(LANGS))


def _where(outline, path: list[str]) -> str:
    label = _fold(outline.get("text") or outline.get("title")) or outline.get("xmlUrl") or "(untitled)"
    return "opml: outline " + " / ".join([*path, repr(label)])


def parse_opml(data: bytes | str, default_lang: str = "en", *,
               max_bytes: int = MAX_BYTES) -> list[dict[str, str]]:
    """The feeds an OPML document lists, in document order, each URL once.

    An outline with an ``xmlUrl`` is a feed, wherever it sits in the folder tree;
    its name is its ``text`` (else ``title``, else the host name); its language is
    its ``language`` (or ``lang``/``xml:lang``) attribute when present, else that of
    the nearest enclosing folder that declares one, else ``default_lang``.
    Raises :class:`OPMLError` for anything that is not usable OPML: not XML,
    a DTD or entity declaration (XXE, billion laughs), no ``<body>``, a feed URL
    that is not http(s), or a language other than en/ru/kk.
    """
    if default_lang not in LANGS:
        raise ValueError(f"opml: default_lang must be one of {', '.join(LANGS)}, not {default_lang!r}")
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("opml: parse_opml takes the document as bytes")
    if len(data) > max_bytes:
        raise OPMLError(f"opml: document is {len(data)} bytes, more than the {max_bytes}-byte limit")
    if not data.strip():
        raise OPMLError("opml: document is empty")
    try:
        root = SafeET.fromstring(bytes(data), forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise OPMLError(f"opml: refused: the document declares a DTD or entities ({type(exc).__name__}); "
                        "OPML needs neither") from None
    except StdET.ParseError as exc:
        line, column = exc.position
        raise OPMLError(f"opml: not well-formed XML at line {line}, column {column + 1}") from None
    if _local(root.tag) != "opml":
        raise OPMLError(f"opml: the root element is <{_local(root.tag)}>, not <opml>")
    body = next((child for child in root if _local(child.tag) == "body"), None)
    if body is None:
        raise OPMLError("opml: the document has no <body>")

    feeds: list[dict[str, str]] = []
    seen: set[str] = set()

    def walk(node, path: list[str], inherited: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise OPMLError(f"opml: folders nested more than {MAX_DEPTH} deep")
        for outline in node:
            if _local(outline.tag) != "outline":
                continue
            lang = inherited
            raw_lang = next((outline.get(a) for a in _LANG_ATTRS if outline.get(a)), None)
            if raw_lang:
                try:
                    lang = normalise_lang(raw_lang) or inherited
                except ValueError as exc:
                    raise OPMLError(f"{_where(outline, path)}: {exc}") from None
            url = _fold(outline.get("xmlUrl") or outline.get("xmlurl"))
            if url:
                parts = urlsplit(url)
                if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                    raise OPMLError(f"{_where(outline, path)}: xmlUrl must be an http or https URL, "
                                    f"not {url!r}")
                if url not in seen:
                    seen.add(url)
                    name = _fold(outline.get("text")) or _fold(outline.get("title")) or parts.hostname
                    feeds.append({"url": url, "name": name, "lang": lang})
            folder = _fold(outline.get("text") or outline.get("title")) or "(untitled)"
            walk(outline, [*path, repr(folder)], lang, depth + 1)

    walk(body, [], default_lang, 0)
    return feeds


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _get(feed: Any, key: str) -> Any:
    return feed.get(key) if isinstance(feed, dict) else getattr(feed, key, None)


def export_opml(feeds: Iterable[Any], title: str = "newsbot feeds", *, group_by_lang: bool = True,
                now: datetime | None = None) -> bytes:
    """An OPML 2.0 document (UTF-8 bytes) listing the feeds.

    ``feeds`` are dicts or objects with ``url``, ``name`` and ``lang`` (config
    ``FeedConfig``, stored ``Feed``, or what :func:`parse_opml` returned). With
    ``group_by_lang`` the feeds sit in one folder per language; each feed outline
    also carries ``language`` so that importing it back needs no default.
    Characters XML cannot carry are dropped from names; a feed without an http(s)
    URL or with an unknown language raises :class:`OPMLError`.
    """
    root = StdET.Element("opml", version="2.0")
    head = StdET.SubElement(root, "head")
    StdET.SubElement(head, "title").text = _clean(title)
    StdET.SubElement(head, "dateCreated").text = format_datetime(now or utcnow())
    StdET.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = StdET.SubElement(root, "body")

    rows = []
    for i, feed in enumerate(feeds):
        url = _fold(_get(feed, "url"))
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise OPMLError(f"opml: feed {i} has no http or https URL ({url!r})")
        lang = _get(feed, "lang")
        if lang not in LANGS:
            raise OPMLError(f"opml: feed {i} ({url}) has language {lang!r}, not one of {', '.join(LANGS)}")
        name = _fold(_clean(_get(feed, "name") or "")) or parts.hostname
        rows.append((url, name, lang))

    folders: dict[str, Any] = {}
    for url, name, lang in rows:
        parent = body
        if group_by_lang:
            if lang not in folders:
                label = _LANG_NAMES[lang]
                folders[lang] = StdET.SubElement(body, "outline", text=label, title=label, language=lang)
            parent = folders[lang]
        StdET.SubElement(parent, "outline", type="rss", text=name, title=name, xmlUrl=url, language=lang)

    StdET.indent(root, space="  ")
    return StdET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)
