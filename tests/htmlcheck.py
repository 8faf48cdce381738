"""A checker for Telegram HTML messages, following /work/shared/TELEGRAM.md.

Independent of the renderer it checks (it shares no code with bot/render.py)
and stricter than Telegram where strictness catches our own bugs:

- only the tags Telegram allows, with only their attributes
  (``a href``, ``span class="tg-spoiler"``, ``tg-emoji emoji-id``,
  ``code class="language-x"`` inside ``pre``, ``blockquote expandable``);
- every tag closed, in order; no link inside a link, nothing inside ``code``,
  no blockquote inside a blockquote;
- a bare ``<`` is an error (Telegram rejects it); a bare ``&`` or an unknown
  entity is an error too (Telegram keeps it literally, but in our output it
  means a piece of text was not escaped);
- links are http(s) only (``require_http_links``);
- the text after entity parsing is 1..``limit`` characters (``limit`` 4096) and
  has at most ``max_entities`` entities;
- hygiene of the visible text: no control characters but newline and tab, no
  bidi embedding/override/isolate characters, nothing that is not valid UTF-8.

``check(html)`` returns the visible text or raises :class:`HtmlError` with
every problem found; ``problems(html)`` returns the list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ALLOWED = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "tg-spoiler", "span", "a",
           "tg-emoji", "code", "pre", "blockquote"}
ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)"
                  r"((?:\s+[a-zA-Z][a-zA-Z0-9-]*(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'))?)*)\s*>")
_ATTR = re.compile(r"([a-zA-Z][a-zA-Z0-9-]*)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'))?")
_ENTITY = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]+);")
_BAD_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


class HtmlError(AssertionError):
    """The message would be refused by Telegram, or breaks our stricter rules."""


@dataclass
class Result:
    visible: str
    entities: int
    problems: list[str]


def _decode(text: str, where: int, problems: list[str]) -> str:
    out = []
    i = 0
    while True:
        j = text.find("&", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        m = _ENTITY.match(text, j)
        if m is None:
            problems.append(f"bare '&' at character {where + j} (text not escaped)")
            out.append("&")
            i = j + 1
            continue
        name = m.group(1)
        if name.startswith("#"):
            code = int(name[2:], 16) if name[1:2] in "xX" else int(name[1:])
            if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                problems.append(f"invalid numeric entity {m.group(0)!r} at character {where + j}")
                out.append(m.group(0))
            else:
                out.append(chr(code))
        elif name in ENTITIES:
            out.append(ENTITIES[name])
        else:
            problems.append(f"unknown entity {m.group(0)!r} at character {where + j} (text not escaped)")
            out.append(m.group(0))
        i = m.end()
    return "".join(out)


def analyse(html: str, *, limit: int = 4096, max_entities: int = 100,
            require_http_links: bool = True) -> Result:
    problems: list[str] = []
    try:
        html.encode("utf-8")
    except UnicodeEncodeError as exc:
        problems.append(f"not valid UTF-8 (lone surrogate at character {exc.start})")
    visible: list[str] = []
    length = 0  # characters in visible so far
    stack: list[str] = []
    entity_starts: list[int] = []  # visible length at each open tag
    entities = 0
    pos = 0
    while pos < len(html):
        lt = html.find("<", pos)
        if lt < 0:
            visible.append(_decode(html[pos:], pos, problems))
            break
        chunk = _decode(html[pos:lt], pos, problems)
        visible.append(chunk)
        length += len(chunk)
        m = _TAG.match(html, lt)
        if m is None:
            problems.append(f"bare '<' or malformed tag at character {lt}: {html[lt:lt + 30]!r}")
            pos = lt + 1
            continue
        closing, name, attrs = m.group(1) == "/", m.group(2).lower(), m.group(3)
        pos = m.end()
        if closing:
            if attrs.strip():
                problems.append(f"attributes on end tag </{name}> at character {lt}")
            if not stack:
                problems.append(f"unexpected end tag </{name}> at character {lt}")
                continue
            if stack[-1] != name:
                problems.append(f"unmatched end tag at character {lt}: "
                                f"expected </{stack[-1]}>, found </{name}>")
                continue
            stack.pop()
            start = entity_starts.pop()
            if length > start:
                entities += 1
            continue
        if name not in ALLOWED:
            problems.append(f"unsupported start tag <{name}> at character {lt}")
            continue
        parsed = {}
        for am in _ATTR.finditer(attrs):
            value = am.group(2) if am.group(2) is not None else am.group(3)
            parsed[am.group(1).lower()] = None if value is None else _decode(value, lt, problems)
        _check_attrs(name, parsed, stack, lt, problems, require_http_links)
        if "a" in stack and name == "a":
            problems.append(f"link inside a link at character {lt}")
        if stack and stack[-1] in ("code",) or (stack and stack[-1] == "pre" and name != "code"):
            problems.append(f"<{name}> inside <{stack[-1]}> at character {lt}")
        if name == "blockquote" and "blockquote" in stack:
            problems.append(f"blockquote inside blockquote at character {lt}")
        stack.append(name)
        entity_starts.append(length)
    if stack:
        problems.append("unclosed tag(s): " + ", ".join(f"<{n}>" for n in stack))
    text = "".join(visible)
    if not text.strip():
        problems.append("message text is empty after entity parsing")
    if len(text) > limit:
        problems.append(f"message is too long: {len(text)} characters after entity parsing (limit {limit})")
    if entities > max_entities:
        problems.append(f"{entities} entities (at most {max_entities})")
    bad = _BAD_CHARS.search(text)
    if bad:
        problems.append(f"control or bidi character U+{ord(bad.group(0)):04X} in the visible text")
    return Result(text, entities, problems)


def _check_attrs(name: str, attrs: dict, stack: list[str], at: int, problems: list[str],
                 require_http_links: bool) -> None:
    allowed = {"a": {"href"}, "span": {"class"}, "tg-emoji": {"emoji-id"}, "code": {"class"},
               "blockquote": {"expandable"}}.get(name, set())
    for attr in attrs:
        if attr not in allowed:
            problems.append(f"attribute {attr!r} not allowed on <{name}> at character {at}")
    if name == "a":
        href = attrs.get("href")
        if not href:
            problems.append(f"<a> without href at character {at}")
        elif require_http_links and not re.match(r"^https?://[^/?#\s]+", href.strip(), re.I):
            problems.append(f"link is not an http(s) URL at character {at}: {href[:60]!r}")
    if name == "span" and attrs.get("class") != "tg-spoiler":
        problems.append(f'<span> must have class "tg-spoiler" at character {at}')
    if name == "tg-emoji" and not (attrs.get("emoji-id") or "").isdigit():
        problems.append(f"<tg-emoji> needs a numeric emoji-id at character {at}")
    if name == "code" and "class" in attrs:
        if not (attrs["class"] or "").startswith("language-") or not stack or stack[-1] != "pre":
            problems.append(f'<code class="language-..."> only directly inside <pre> at character {at}')
    if name == "blockquote" and attrs.get("expandable") not in (None,):
        problems.append(f"blockquote expandable takes no value at character {at}")


def problems(html: str, **kwargs) -> list[str]:
    return analyse(html, **kwargs).problems


def check(html: str, **kwargs) -> str:
    """The visible text of a valid message; raises :class:`HtmlError` listing every problem."""
    result = analyse(html, **kwargs)
    if result.problems:
        raise HtmlError("; ".join(result.problems) + f"\n--- message ---\n{html[:2000]}")
    return result.visible
