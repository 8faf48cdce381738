"""Feed bytes -> plain-text entries.

:func:`parse_feed` is synchronous and pure: it takes the fetched body and the
response headers and returns a :class:`~bot.models.ParseResult`; it never
raises for bad input (errors start with ``"parse: "``) and never touches the
network or the file system. feedparser is imported here and nowhere else.

Two parsers produce the same entries:

* a fast first pass (:func:`_fast_parse`, expat) for well-formed UTF-8
  RSS 2.0 / Atom 1.0 without DOCTYPE, ``xml:base`` or anything else unusual;
  it gives up (returns None) at the first thing it is not sure about;
* feedparser, for everything else (other encodings, RSS 0.9x/1.0, broken XML,
  odd dates, HTML-looking titles...).

``tests/test_parse.py`` parses every sample feed with both and checks they
agree, so the fast pass never loses anything feedparser would have kept.

Normalisation decisions (both parsers):

* titles and summaries are plain text: tags stripped (``script``/``style``
  with their content; in titles even when the feed calls them plain text),
  entities decoded, control, zero-width and bidi override characters removed,
  whitespace folded; titles bounded to :data:`TITLE_MAX` characters, summaries to :data:`SUMMARY_MAX`;
* dates are UTC; missing or unparsable -> None; a date more than
  :data:`FUTURE_SLACK` ahead of ``now`` or before 1995 is treated as unknown
  (None), not clamped to ``now``: a wrong date must not make an old item look
  fresh;
* links are made absolute against the feed URL; only http/https are kept;
* an entry with no title, no summary and no link is dropped (nothing to show
  or to identify); an entry with a summary and no title takes the summary's
  first sentence or words as its title (:func:`title_from_summary`); repeated
  entries (same :func:`item_key`) keep the first.
"""

from __future__ import annotations

import calendar
import codecs
import functools
import hashlib
import html
import io
import itertools
import re
import unicodedata
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit
from xml.etree import ElementTree

import feedparser

from .models import Entry, ParseResult, identifies

TITLE_MAX = 500
SUMMARY_MAX = 1000
DERIVED_TITLE_MAX = 140  # a title taken from the summary (an entry with none) is at most this long
FUTURE_SLACK = timedelta(days=1)
OLDEST = datetime(1995, 1, 1, tzinfo=timezone.utc)

# Query parameters that only track the reader, never select content.
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "gclsrc", "dclid", "yclid", "msclkid", "twclid", "ttclid", "igshid",
    "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id",
    "vero_id", "wickedid", "rb_clickid", "s_cid", "ncid", "cmpid", "ito", "at_medium", "at_campaign",
    "at_custom1", "at_custom2", "at_custom3", "at_custom4", "ref_src", "ref_url", "spm",
})
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "__hs", "ym_")

# C0/C1 controls (tab/newline/CR are folded as whitespace instead), zero-width
# and bidi embedding/override/isolate marks, BOM, interlinear annotations,
# tag characters and lone surrogates (SQLite cannot store them).
_BAD_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufeff\ufff9-\ufffb\ud800-\udfff\U000e0000-\U000e007f]"
)
_WS = re.compile(r"\s+")
# HTML markup (html_to_text): a tag, a quoted attribute value or a comment left open runs to
# the end of the text, as in a browser. Every pattern then matches wherever it starts, so a
# substitution is one pass: patterns that can fail after scanning ahead ("<a <a <a ..."
# with no ">") are retried at every "<", and cost time quadratic in the length (30 kB of
# unclosed tags took 8 s; a 1.1 MB feed body of them now takes 0.2 s).
_ATTRS = r"""(?:[^>"']|"[^"]*(?:"|\Z)|'[^']*(?:'|\Z))*"""  # a tag's attributes, quoted ">" included
_TAG_END = r"(?:>|\Z)"
_DROP_BLOCKS = re.compile(r"<(script|style|applet)\b" + _ATTRS + _TAG_END + r".*?(</\1\s*>|\Z)", re.I | re.S)
_DROP_START = re.compile(r"<(script|style|applet)\b", re.I)
_COMMENT = re.compile(r"<!--.*?(-->|\Z)", re.S)
_BLOCK_TAG = re.compile(
    r"</?(?:p|div|br|hr|li|ul|ol|dl|dt|dd|h[1-6]|tr|td|th|table|thead|tbody|blockquote|section|"
    r"article|header|footer|aside|nav|figure|figcaption|pre|img|address)\b" + _ATTRS + _TAG_END,
    re.I,
)
_TAG = re.compile(r"</?[A-Za-z]" + _ATTRS + _TAG_END + r"|<![^>]*" + _TAG_END + r"|<\?[^>]*" + _TAG_END)
# Plain-text titles (_untag, at most TITLE_MAX characters): only a closed tag is markup; a
# "<" without its ">" is the title's own text.
_CLOSED_ATTRS = r"""(?:[^>"']|"[^"]*"|'[^']*')*"""
_CLOSED_TAG = re.compile(r"</?[A-Za-z]" + _CLOSED_ATTRS + r">|<![^>]*>|<\?[^>]*>")
_CLOSED_DROP_BLOCKS = re.compile(r"<(script|style|applet)\b" + _CLOSED_ATTRS + r">.*?(</\1\s*>|\Z)", re.I | re.S)
_LOOKS_HTML = re.compile(r"</\w+>|&#?\w+;")


# -- text --------------------------------------------------------------------


def clean_text(text: str | None, limit: int | None = None) -> str:
    """Plain text made safe to store and show: no controls, folded, bounded."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", _BAD_CHARS.sub("", text))
    text = _WS.sub(" ", text).strip()
    if limit is not None and len(text) > limit:
        cut = text[: limit - 1]
        space = cut.rfind(" ")
        if space > limit * 0.8:
            cut = cut[:space]
        text = cut.rstrip() + "…"
    return text


def html_to_text(markup: str | None, limit: int | None = None) -> str:
    """HTML fragment -> plain text: tags (and script/style bodies) gone, entities decoded."""
    if not markup:
        return ""
    if "<" in markup:
        if "<!--" in markup:
            markup = _COMMENT.sub("", markup)
        if _DROP_START.search(markup):
            markup = _DROP_BLOCKS.sub("", markup)
        markup = _BLOCK_TAG.sub(" ", markup)
        markup = _TAG.sub("", markup)
    if "&" in markup:
        markup = html.unescape(markup)
    return clean_text(markup, limit)


def _untag(title: str) -> str:
    """A title never carries markup: tags that survive as literal text (a plain-text
    title reading ``<script>...</script>``) are removed with script/style bodies."""
    if "<" in title and _CLOSED_TAG.search(title):
        title = _WS.sub(" ", _CLOSED_TAG.sub("", _CLOSED_DROP_BLOCKS.sub("", title))).strip()
    return title


def _text(value: str | None, content_type: str | None, limit: int) -> str:
    if content_type and "html" in content_type:
        return html_to_text(value, limit)
    return clean_text(value, limit)


# -- URLs and keys -------------------------------------------------------------


def _tracking(name: str) -> bool:
    low = name.lower()
    return low in TRACKING_PARAMS or low.startswith(TRACKING_PREFIXES)


def canonical_url(url: str | None) -> str | None:
    """The URL an item is known by: http(s) only, lower-case scheme and host, no
    default port, no user info, no fragment, no tracking parameters, sorted query.
    Anything else (None, relative, other schemes, garbage) gives None."""
    if not url:
        return None
    return _canonical(url)


_PATH_OK = re.compile(r"^[A-Za-z0-9/%:@!$&'()*+,;=~._-]*$")


@functools.lru_cache(maxsize=32768)  # the pipeline asks twice per entry (key and URL)
def _canonical(url: str) -> str | None:
    url = _BAD_CHARS.sub("", url).strip()
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port
    except ValueError:
        return None
    if scheme not in ("http", "https") or not host or any(c.isspace() for c in host):
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and not (scheme == "http" and port == 80 or scheme == "https" and port == 443):
        netloc += f":{port}"
    path = parts.path or "/"
    if not _PATH_OK.match(path):
        path = quote(path, safe="/%:@!$&'()*+,;=~-._")
    query = ""
    if parts.query:
        pairs = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _tracking(k))
        query = urlencode(pairs)
    return urlunsplit((scheme, netloc, path, query, ""))


# An absolute http(s) URL that urljoin() returns unchanged: ASCII, no spaces, no
# fragment, no empty query, no empty or dot path segments.
_SIMPLE_ABS = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%!$&'()*+,;=:@-]+)*/?"
                         r"(\?[A-Za-z0-9._~%!$&'()*+,;=:@/?-]+)?$")
_DOT_SEGMENT = re.compile(r"/\.\.?(/|\?|$)")


def absolute_http_url(link: str | None, base: str) -> str | None:
    """``link`` resolved against ``base``; None unless it is http(s) with a host."""
    if not link:
        return None
    if _SIMPLE_ABS.match(link) and not _DOT_SEGMENT.search(link):
        return link  # what urljoin would return for it, without the cost
    link = _BAD_CHARS.sub("", link).strip()
    try:
        full = urljoin(base, link)
        parts = urlsplit(full)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return None
    except ValueError:
        return None
    return full


def _norm_for_hash(text: str) -> str:
    return _WS.sub(" ", text.casefold()).strip()


def content_hash(title: str, summary: str, url: str | None = None) -> str:
    """sha1 of the case-folded, whitespace-folded title and summary; of the (canonical) ``url``
    when both are empty, so that items with no text at all are not all one duplicate."""
    text = _norm_for_hash(title) + "\n" + _norm_for_hash(summary)
    raw = "url:" + url if text == "\n" and url else text
    return hashlib.sha1(raw.encode("utf-8", "surrogatepass")).hexdigest()


def item_key(entry: Entry) -> str:
    """Stable per-feed identity: the GUID, else the canonical link (unless it is the site's front
    page), else a content hash."""
    if entry.guid:
        return "guid:" + entry.guid
    url = canonical_url(entry.link)
    if identifies(url):
        return "url:" + url
    return "hash:" + content_hash(entry.title, entry.summary, url)


# -- dates ---------------------------------------------------------------------


def _usable_date(dt: datetime | None, now: datetime) -> datetime | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    dt = dt.astimezone(timezone.utc)
    if dt > now + FUTURE_SLACK or dt < OLDEST:
        return None
    return dt.replace(microsecond=0)


def _from_struct(st) -> datetime | None:
    if not st:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(st), tz=timezone.utc)
    except (OverflowError, ValueError, OSError, TypeError):
        return None


# -- the entry point -------------------------------------------------------------

_DOCTYPE = re.compile(rb"<!DOCTYPE\b", re.I)
_ENTITY_DECL = re.compile(
    rb"<!ENTITY\s+(%|[^\s>]+\s+(SYSTEM|PUBLIC|\"[^\"]*&[A-Za-z_:]|'[^']*&[A-Za-z_:]))", re.I)


def _hostile_doctype(body: bytes) -> str | None:
    """Why the document's DOCTYPE is refused, or None.

    External entities (``SYSTEM``/``PUBLIC``), parameter entities and entities
    whose value refers to other entities (the billion-laughs pattern) are
    refused outright; simple character entities are left to feedparser, which
    strips the DOCTYPE and keeps only those."""
    head = body[:65536]
    m = _DOCTYPE.search(head)
    if not m:
        return None
    # Look at the declarations before the first element only.
    start = m.start()
    first_el = re.search(rb"<[A-Za-z_]", head[start + 9:])
    subset = head[start: start + 9 + first_el.start()] if first_el else head[start:]
    if _ENTITY_DECL.search(subset):
        return "refused: the DOCTYPE declares external, parameter or nested entities"
    return None


_PROLOG_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)


def _codec(name: str | bytes | None) -> str | None:
    if not name:
        return None
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    try:
        return codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return None


def _decodes(body: bytes, codec: str) -> bool:
    try:
        body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def effective_headers(headers: dict[str, str], body: bytes) -> dict[str, str]:
    """The response headers with a charset that contradicts the body removed.

    Servers often send a default charset that is not the feed's: a byte-order
    mark wins; then an encoding declared in the XML prolog that the body
    decodes with; then, with no declaration, UTF-8 when the body is valid
    non-ASCII UTF-8. When the header's charset loses, Content-Type becomes
    ``application/xml`` without a charset, so the parser follows the document.
    """
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    ctype = headers.get("content-type", "")
    media, _, params = ctype.partition(";")
    m = re.search(r"charset\s*=\s*[\"']?([^\s;\"']+)", params, re.I)
    header_codec = _codec(m.group(1)) if m else None
    if not m:
        return headers
    wrong = False
    if body.startswith(_BOMS):
        wrong = True
    else:
        pm = _PROLOG_ENCODING.match(body[:1024])
        prolog_codec = _codec(pm.group(1)) if pm else None
        if prolog_codec:
            wrong = prolog_codec != header_codec and _decodes(body, prolog_codec)
        elif header_codec != "utf-8" and not body.isascii() and _decodes(body, "utf-8"):
            wrong = True
    if header_codec is None:
        wrong = True  # an unknown charset name helps nobody
    if wrong:
        headers["content-type"] = "application/xml"
    return headers


MAX_ITEMS = 500  # entries kept from one body (the newest), unless the caller says otherwise
ITEM_TAG_FACTOR = 20  # a body with more item/entry tags than this many times the cap is refused unparsed
_ITEM_TAG = re.compile(rb"<(?:[A-Za-z][\w.-]*:)?(?:item|entry)[\s>/]")
# feedparser spends about 0.1 ms on each element (measured: 100,000 <category> elements, 14 s),
# so a body of small elements is CPU for the asking. Real feeds have a few thousand (500 items of
# 30 elements, plus the HTML of CDATA sections, which this count includes); more than this is refused.
MAX_TAGS = 100_000
_START_TAG = re.compile(rb"<[A-Za-z]")


def parse_feed(body: bytes, headers: dict[str, str], url: str, now: datetime,
               max_items: int = MAX_ITEMS) -> ParseResult:
    """Parse a fetched feed body into plain-text entries (never raises for bad input).

    At most ``max_items`` entries are kept: the newest by date (undated ones count as
    newest), in the body's order; ``dropped`` says how many were left out. A body with
    more than ``ITEM_TAG_FACTOR`` times that many item tags, or more than ``MAX_TAGS`` tags,
    is refused before parsing: no real feed is that long, and parsing it would cost seconds
    (minutes for the largest bodies the fetch limits let through) and hundreds of MB.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    if not body or not body.strip():
        return ParseResult(entries=[], error="parse: empty body")
    hostile = _hostile_doctype(body)
    if hostile:
        return ParseResult(entries=[], error="parse: " + hostile)
    limit = max_items * ITEM_TAG_FACTOR
    probe = body.replace(b"\x00", b"") if b"\x00" in body[:4] else body  # UTF-16/32: count the ASCII
    tags = sum(1 for _ in itertools.islice(_ITEM_TAG.finditer(probe), limit + 1))
    if tags > limit:
        return ParseResult(entries=[], error=f"parse: refused, more than {limit} items in one body")
    if sum(1 for _ in itertools.islice(_START_TAG.finditer(probe), MAX_TAGS + 1)) > MAX_TAGS:
        return ParseResult(entries=[], error=f"parse: refused, more than {MAX_TAGS} tags in one body")
    headers = effective_headers(headers, body)
    result = _fast_parse(body, headers, url, now)
    if result is None:
        result = _feedparser_parse(body, headers, url, now)
    return _cap(result, max_items, now)


def _cap(result: ParseResult, max_items: int, now: datetime) -> ParseResult:
    """Keep the newest ``max_items`` entries, in their order in the body."""
    entries = result.entries
    if len(entries) <= max_items:
        return result
    # a stable sort: among equal dates (the undated ones, taken as now) the body's order holds
    newest = sorted(range(len(entries)), key=lambda i: entries[i].published or now, reverse=True)[:max_items]
    result.entries = [entries[i] for i in sorted(newest)]
    result.dropped = len(entries) - max_items
    return result


_SENTENCE_END = re.compile(r"[.!?…](?=\s)")


def title_from_summary(summary: str) -> str:
    """A title for an entry that has none (feeds of short posts): the summary's first
    sentence when it is short, else its first words, cut at a word, with "…"."""
    end = _SENTENCE_END.search(summary, 20, DERIVED_TITLE_MAX)
    if end is not None:
        return summary[:end.start() + 1]
    if len(summary) <= DERIVED_TITLE_MAX:
        return summary
    cut = summary.rfind(" ", 40, DERIVED_TITLE_MAX)
    return summary[:cut if cut > 0 else DERIVED_TITLE_MAX].rstrip(" ,;:-–—") + "…"


def _finish(raw_entries: list[Entry], feed_title: str | None, bozo: str | None) -> ParseResult:
    entries: list[Entry] = []
    seen: set[str] = set()
    for e in raw_entries:
        if not (e.title or e.summary or e.link):
            continue
        if not e.title and e.summary:
            e.title = title_from_summary(e.summary)
        key = item_key(e)
        if key in seen:
            continue
        seen.add(key)
        entries.append(e)
    return ParseResult(entries=entries, feed_title=feed_title or None, bozo=bozo)


def _feedparser_parse(body: bytes, headers: dict[str, str], url: str, now: datetime) -> ParseResult:
    response_headers = dict(headers)
    response_headers.setdefault("content-location", url)
    try:
        # A file object, never bytes or str: feedparser treats a bytes/str
        # argument that names a path or URL as something to open or fetch.
        parsed = feedparser.parse(io.BytesIO(body), response_headers=response_headers,
                                  resolve_relative_uris=False, sanitize_html=False)
    except Exception as exc:  # feedparser bugs on hostile input must not escape
        return ParseResult(entries=[], error=f"parse: feedparser failed: {type(exc).__name__}: {exc}")
    bozo = None
    benign = False  # a complaint about the headers (a text/plain type, a charset), not about the XML
    if parsed.get("bozo"):
        exc = parsed.get("bozo_exception")
        benign = isinstance(exc, feedparser.ThingsNobodyCaresAboutButMe)
        bozo = f"{type(exc).__name__}: {exc}" if exc is not None else "malformed"
    if not parsed.get("version") and not parsed.entries:
        first = body.lstrip()[:512].lower()
        if b"<html" in first or b"<!doctype html" in first:
            return ParseResult(entries=[], error="parse: not a feed (an HTML page)")
        why = f" ({bozo})" if bozo else ""
        return ParseResult(entries=[], error=f"parse: not a feed{why}")

    feed_title = clean_text(parsed.feed.get("title"), TITLE_MAX) if parsed.get("feed") else None
    raw: list[Entry] = []
    for e in parsed.entries:
        title_detail = e.get("title_detail") or {}
        title = _untag(_text(e.get("title"), title_detail.get("type"), TITLE_MAX))
        summary_value, summary_type = e.get("summary"), (e.get("summary_detail") or {}).get("type")
        if not summary_value and e.get("content"):
            summary_value, summary_type = e.content[0].get("value"), e.content[0].get("type")
        summary = _text(summary_value, summary_type or "text/html", SUMMARY_MAX)
        published = _from_struct(e.get("published_parsed") or e.get("updated_parsed")
                                 or e.get("created_parsed"))
        guid = clean_text(e.get("id"), 2000) or None
        link = absolute_http_url(e.get("link"), url)
        author = clean_text(e.get("author"), 200) or None
        raw.append(Entry(guid=guid, link=link, title=title, summary=summary,
                         published=_usable_date(published, now), author=author))
    if not raw and bozo and not benign:
        return ParseResult(entries=[], feed_title=feed_title, error=f"parse: malformed feed ({bozo})")
    return _finish(raw, feed_title, bozo)


# -- the fast first pass ---------------------------------------------------------------

ATOM = "{http://www.w3.org/2005/Atom}"
DC = "{http://purl.org/dc/elements/1.1/}"
_RSS_ITEM_TAGS = frozenset({"title", "link", "description", "guid", "pubDate", "category", "comments",
                            "enclosure", DC + "creator", DC + "subject"})
_ATOM_ENTRY_TAGS = frozenset(ATOM + t for t in ("title", "id", "link", "published", "updated", "summary",
                                                "content", "category"))
_ABS_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d+)?(/[!#-;=?-~]*)?$")  # ASCII, no spaces, < > "
_REL_PATH = re.compile(r"^/(?!/)[!#-;=?-~]*$")  # path-absolute, ASCII
_ATOM_ID = re.compile(r"^(https?://[!#-;=?-~]+|tag:[!#-;=?-~]+|urn:[!#-;=?-~]+)$")
_RFC822 = re.compile(r"^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{1,2}) "
                     r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) "
                     r"(\d{2}):(\d{2}):(\d{2}) ([+-]\d{4}|GMT|UTC)$")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")
_UNUSUAL = (b"<!DOCTYPE", b"<!doctype", b"<!ENTITY", b"xml:base", b"<?xml-stylesheet")


class _GiveUp(Exception):
    """The fast pass is not sure: feedparser decides."""


def _latin1_fix(text: str) -> str:
    # feedparser repairs UTF-8 text that was mis-decoded as Latin-1; do the same.
    if text.isascii():
        return text
    try:
        return text.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _plain_or_give_up(text: str | None) -> str:
    text = _latin1_fix((text or "").strip())
    if _LOOKS_HTML.search(text):
        raise _GiveUp  # feedparser would guess HTML here
    return text


def _only_text(el) -> str:
    if len(el):
        raise _GiveUp  # nested elements (inline XHTML and the like)
    return el.text or ""


_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                        "Nov", "Dec"), 1)}


def _rfc822(text: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    m = _RFC822.match(text)
    if not m:
        raise _GiveUp
    day, month, year, hh, mm, ss, zone = m.groups()
    if zone in ("GMT", "UTC"):
        tz = timezone.utc
    else:
        sign = -1 if zone[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])))
    # ValueError (31 Feb, hour 25) -> feedparser decides
    return datetime(int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss), tzinfo=tz)


def _iso(text: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    if not _ISO.match(text):
        raise _GiveUp
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _fast_parse(body: bytes, headers: dict[str, str], url: str, now: datetime) -> ParseResult | None:
    """The fast first pass for plain UTF-8 RSS 2.0 and Atom 1.0; None whenever feedparser must decide."""
    ctype = headers.get("content-type", "").lower()
    if "html" in ctype or ("charset" in ctype and not re.search(r"charset\s*=\s*[\"']?utf-?8\b", ctype)):
        return None
    head = body[:200]
    pm = _PROLOG_ENCODING.match(head)
    if pm and _codec(pm.group(1)) != "utf-8":
        return None
    if any(marker in body for marker in _UNUSUAL):
        return None
    try:
        body.decode("utf-8")
        root = ElementTree.fromstring(body)
        if root.tag == "rss" and root.get("version") == "2.0":
            relative_ok = headers.get("content-location", url) == url and bool(_ABS_URL.match(url))
            return _fast_rss(root, url, now, relative_ok)
        if root.tag == ATOM + "feed":
            return _fast_atom(root, url, now)
    except (_GiveUp, ElementTree.ParseError, UnicodeDecodeError, ValueError, TypeError, OverflowError):
        return None
    return None


def _fast_rss(root, url: str, now: datetime, relative_ok: bool) -> ParseResult:
    channels = [c for c in root if c.tag == "channel"]
    if len(channels) != 1 or len(root) != 1:
        raise _GiveUp
    channel = channels[0]
    titles = [c for c in channel if c.tag == "title"]
    if len(titles) > 1:
        raise _GiveUp
    feed_title = clean_text(_plain_or_give_up(_only_text(titles[0])), TITLE_MAX) if titles else None
    raw: list[Entry] = []
    for item in channel.iter("item"):
        fields: dict[str, object] = {}
        for child in item:
            tag = child.tag
            if tag not in _RSS_ITEM_TAGS or tag in fields:
                raise _GiveUp
            fields[tag] = child
        title = ""
        if "title" in fields:
            title = _untag(clean_text(_plain_or_give_up(_only_text(fields["title"])), TITLE_MAX))
        summary = ""
        if "description" in fields:
            summary = html_to_text(_latin1_fix(_only_text(fields["description"]).strip()), SUMMARY_MAX)
        link = None
        if "link" in fields:
            text = _latin1_fix(_only_text(fields["link"]).strip())
            if not text:
                raise _GiveUp  # an empty <link> next to a permalink GUID: feedparser decides
            if not _ABS_URL.match(text):
                if not (relative_ok and _REL_PATH.match(text)):
                    raise _GiveUp
                text = urljoin(url, text)
            link = text or None
        guid = None
        if "guid" in fields:
            el = fields["guid"]
            if set(el.attrib) - {"isPermaLink"}:
                raise _GiveUp
            text = _latin1_fix(_only_text(el).strip())
            permalink = el.get("isPermaLink", "true") != "false"
            if permalink and text and not _ABS_URL.match(text):
                raise _GiveUp
            guid = clean_text(text, 2000) or None
            if permalink and guid and link is None:
                link = guid
        published = _rfc822(_only_text(fields["pubDate"])) if "pubDate" in fields else None
        author = None
        if DC + "creator" in fields:
            author = clean_text(_plain_or_give_up(_only_text(fields[DC + "creator"])), 200) or None
        raw.append(Entry(guid=guid, link=absolute_http_url(link, url), title=title, summary=summary,
                         published=_usable_date(published, now), author=author))
    return _finish(raw, feed_title, None)


def _atom_text(el, limit: int) -> str:
    kind = el.get("type", "text")
    if set(el.attrib) - {"type"} or kind not in ("text", "html"):
        raise _GiveUp
    if kind == "text":
        return clean_text(_plain_or_give_up(_only_text(el)), limit)
    return html_to_text(_latin1_fix(_only_text(el).strip()), limit)


def _fast_atom(root, url: str, now: datetime) -> ParseResult:
    titles = root.findall(ATOM + "title")
    if len(titles) > 1:
        raise _GiveUp
    feed_title = _atom_text(titles[0], TITLE_MAX) if titles else None
    if root.find(ATOM + "author") is not None:
        raise _GiveUp
    raw: list[Entry] = []
    for entry in root.iter(ATOM + "entry"):
        fields: dict[str, object] = {}
        links = []
        for child in entry:
            tag = child.tag
            if tag not in _ATOM_ENTRY_TAGS:
                raise _GiveUp
            if tag == ATOM + "link":
                links.append(child)
                continue
            if tag in fields:
                raise _GiveUp
            fields[tag] = child
        title = _untag(_atom_text(fields[ATOM + "title"], TITLE_MAX)) if ATOM + "title" in fields else ""
        summary_el, content_el = fields.get(ATOM + "summary"), fields.get(ATOM + "content")
        if content_el is not None and (summary_el is None or not (summary_el.text or "").strip()):
            # feedparser copies a content to the summary, and how depends on the order of the two
            # and the content's type: only the plain case (html content, no summary) is taken here
            if summary_el is not None or content_el.get("type") != "html":
                raise _GiveUp
            summary_el = content_el
        summary = _atom_text(summary_el, SUMMARY_MAX) if summary_el is not None else ""
        link = None
        for el in links:
            if len(el) or set(el.attrib) - {"rel", "href", "type", "title", "hreflang", "length"}:
                raise _GiveUp
            rel = el.get("rel", "alternate")
            if rel != "alternate":
                continue
            href = _latin1_fix((el.get("href") or "").strip())
            if link is not None or el.get("type", "text/html") != "text/html" or not _ABS_URL.match(href):
                raise _GiveUp
            link = href
        guid = None
        if ATOM + "id" in fields:
            text = _latin1_fix(_only_text(fields[ATOM + "id"]).strip())
            if text and not _ATOM_ID.match(text):
                raise _GiveUp
            guid = clean_text(text, 2000) or None
            if link is None and text:
                link = text  # as feedparser does: with no alternate link, the id is the link
        published = None
        if ATOM + "published" in fields:
            published = _iso(_only_text(fields[ATOM + "published"]))
        if published is None and ATOM + "updated" in fields:
            published = _iso(_only_text(fields[ATOM + "updated"]))
        raw.append(Entry(guid=guid, link=absolute_http_url(link, url), title=title, summary=summary,
                         published=_usable_date(published, now), author=None))
    return _finish(raw, feed_title, None)
