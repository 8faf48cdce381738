"""Topic rules as written in config.toml, parsed and validated.

A topic is a set of named *concept groups* and a boolean ``match`` expression
over the group names (the README section "Topic rules" has a worked example)::

    [[topics]]
    id = "csto-deployment"
    name = "CSTO troop deployments"
    match = "csto AND deploy AND NOT (exercise OR summit)"
    threshold = 0              # optional: minimum score (sum of matched group weights)

    [topics.groups.csto]
    en = ["CSTO", "Collective Security Treaty Organization"]
    ru = ["ОДКБ", "Организация договора о коллективной безопасности"]
    kk = ["ҰҚШҰ"]
    any = ["CSTO"]             # optional: tried in every language
    weight = 1.0               # optional (default 1)
    concept = "csto"           # optional: id used for cross-language fingerprints

    [topics.groups.place.parts.almaty]     # optional sub-concepts: concept "place:almaty"
    en = ["Almaty", "Alma-Ata"]
    ru = ["Алматы", "Алма-Ата"]
    kk = ["Алматы"]

Terms: a word (matched in any inflected form of the item's language), several
words (a phrase: the words in that order, each inflected freely), and ``word*``
(a prefix of the word as written, at least three letters before the star).
Matching is case-insensitive.

Expression: group names, ``AND``, ``OR``, ``NOT`` and parentheses (``NOT``
binds tightest, then ``AND``, then ``OR``; keywords in any case).

Every problem is a :class:`~bot.errors.ConfigError` naming the key, e.g.
``topics[1].groups.place.ru[3]: the star must end a word``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

from .errors import ConfigError
from .models import LANGS

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_GROUP = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,47}$")
_CONCEPT = re.compile(r"^[a-z0-9][a-z0-9_:.-]{0,63}$")
_TERM_WORD = re.compile(r"[^\W_]+\*?")
MAX_TERM_WORDS = 8
MAX_TERM_CHARS = 120
TERM_KEYS = LANGS + ("any",)
GROUP_KEYS = set(TERM_KEYS) | {"weight", "concept", "parts"}
TOPIC_KEYS = {"id", "name", "names", "match", "threshold", "groups", "description"}


# -- terms -------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """One term as written: its words (lower-case) and which of them are prefixes."""

    text: str
    words: tuple[str, ...]
    prefix: tuple[bool, ...]

    @property
    def is_phrase(self) -> bool:
        return len(self.words) > 1


def parse_term(value: object, where: str) -> Term:
    """A term string -> :class:`Term`; ConfigError naming ``where`` when unusable."""
    if not isinstance(value, str):
        raise ConfigError(where, f"must be a string, not {value!r}")
    text = " ".join(value.split())
    if not text:
        raise ConfigError(where, "is empty")
    if len(text) > MAX_TERM_CHARS:
        raise ConfigError(where, f"is longer than {MAX_TERM_CHARS} characters")
    if re.search(r"\*(?=[^\W_])", text):
        raise ConfigError(where, f"the star must end a word: {value!r}")
    parts = _TERM_WORD.findall(text)
    if not parts:
        raise ConfigError(where, f"has no letters or digits: {value!r}")
    if text.count("*") != sum(p.endswith("*") for p in parts):
        raise ConfigError(where, f"the star must end a word: {value!r}")
    if len(parts) > MAX_TERM_WORDS:
        raise ConfigError(where, f"has more than {MAX_TERM_WORDS} words")
    words = []
    prefix = []
    for p in parts:
        is_prefix = p.endswith("*")
        w = p.rstrip("*")
        if is_prefix and len(w) < 3:
            raise ConfigError(where, f"a prefix needs at least 3 letters before the star: {value!r}")
        words.append(w)
        prefix.append(is_prefix)
    return Term(text=text, words=tuple(words), prefix=tuple(prefix))


# -- the match expression -------------------------------------------------------------

Expr = Union[str, tuple]  # group name | ("not", e) | ("and", e1, e2, ...) | ("or", e1, ...)

_TOKEN = re.compile(r"\s*(?:(\()|(\))|([A-Za-z_][A-Za-z0-9_-]*)|(\S))")


def parse_expression(text: object, where: str) -> Expr:
    """Parse ``a AND (b OR c) AND NOT d`` into a small tuple tree."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(where, "must be a non-empty expression such as \"place AND event\"")
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            break
        start = m.start(m.lastindex)
        if m.group(1):
            tokens.append(("(", "(", start))
        elif m.group(2):
            tokens.append((")", ")", start))
        elif m.group(3):
            word = m.group(3)
            kind = word.upper() if word.upper() in ("AND", "OR", "NOT") else "name"
            tokens.append((kind, word, start))
        else:
            raise ConfigError(where, f"unexpected {m.group(4)!r} at position {start + 1}")
        pos = m.end()
    i = 0

    def peek() -> str | None:
        return tokens[i][0] if i < len(tokens) else None

    def fail(what: str) -> ConfigError:
        if i < len(tokens):
            return ConfigError(where, f"{what} at position {tokens[i][2] + 1} ({tokens[i][1]!r})")
        return ConfigError(where, f"{what} at the end of the expression")

    def parse_or() -> Expr:
        nonlocal i
        items = [parse_and()]
        while peek() == "OR":
            i += 1
            items.append(parse_and())
        return items[0] if len(items) == 1 else ("or", *items)

    def parse_and() -> Expr:
        nonlocal i
        items = [parse_not()]
        while peek() == "AND":
            i += 1
            items.append(parse_not())
        return items[0] if len(items) == 1 else ("and", *items)

    def parse_not() -> Expr:
        nonlocal i
        if peek() == "NOT":
            i += 1
            return ("not", parse_not())
        return parse_atom()

    def parse_atom() -> Expr:
        nonlocal i
        kind = peek()
        if kind == "(":
            i += 1
            inner = parse_or()
            if peek() != ")":
                raise fail("missing ')'")
            i += 1
            return inner
        if kind == "name":
            name = tokens[i][1]
            i += 1
            return name
        raise fail("expected a group name or '('")

    expr = parse_or()
    if i != len(tokens):
        raise fail("expected AND or OR")
    return expr


def expression_names(expr: Expr) -> set[str]:
    if isinstance(expr, str):
        return {expr}
    out: set[str] = set()
    for e in expr[1:]:
        out |= expression_names(e)
    return out


def positive_names(expr: Expr, negated: bool = False) -> set[str]:
    """Group names that count for the topic (not under an odd number of NOTs)."""
    if isinstance(expr, str):
        return set() if negated else {expr}
    if expr[0] == "not":
        return positive_names(expr[1], not negated)
    out: set[str] = set()
    for e in expr[1:]:
        out |= positive_names(e, negated)
    return out


def evaluate(expr: Expr, matched: set[str] | frozenset[str]) -> bool:
    if isinstance(expr, str):
        return expr in matched
    op = expr[0]
    if op == "not":
        return not evaluate(expr[1], matched)
    if op == "and":
        return all(evaluate(e, matched) for e in expr[1:])
    return any(evaluate(e, matched) for e in expr[1:])


def compile_expression(expr: Expr):
    """The expression as a fast predicate over a set of matched group names."""

    def code(e: Expr) -> str:
        if isinstance(e, str):
            return f"({e!r} in m)"
        if e[0] == "not":
            return f"(not {code(e[1])})"
        sep = " and " if e[0] == "and" else " or "
        return "(" + sep.join(code(x) for x in e[1:]) + ")"

    # names are validated identifiers, and repr() quotes them: no code injection
    return eval(f"lambda m: {code(expr)}", {"__builtins__": {}})  # noqa: S307


def format_expression(expr: Expr) -> str:
    if isinstance(expr, str):
        return expr
    if expr[0] == "not":
        return "NOT " + format_expression(expr[1])
    sep = " AND " if expr[0] == "and" else " OR "
    return "(" + sep.join(format_expression(e) for e in expr[1:]) + ")"


# -- groups and topics ----------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """A named sub-concept of a group (e.g. one city of a place group)."""

    name: str
    concept: str
    terms: dict[str, tuple[Term, ...]]  # lang -> terms ("any" terms merged in)


@dataclass(frozen=True)
class Group:
    name: str
    concept: str
    weight: float
    terms: dict[str, tuple[Term, ...]]  # lang -> terms ("any" terms merged in)
    parts: tuple[Part, ...] = ()

    def term_count(self) -> int:
        return sum(len(v) for v in self.terms.values()) + sum(
            len(v) for p in self.parts for v in p.terms.values())


@dataclass(frozen=True)
class Topic:
    id: str
    name: str
    groups: tuple[Group, ...] = ()
    expr: Expr | None = None  # None: a topic without rules (never matches)
    threshold: float = 0.0
    raw: dict = field(default_factory=dict, compare=False, repr=False)
    names: tuple[tuple[str, str], ...] = ()  # (lang, name) for readers of other languages than name's

    def name_in(self, lang: str) -> str:
        """The topic's name for a reader of ``lang``: its own name there, else ``name``."""
        return next((text for code, text in self.names if code == lang), self.name)

    @property
    def positive(self) -> frozenset[str]:
        return frozenset(positive_names(self.expr)) if self.expr is not None else frozenset()

    def group(self, name: str) -> Group | None:
        return next((g for g in self.groups if g.name == name), None)


def _number(value: object, where: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(where, f"must be a number, not {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(where, f"must be at least {minimum:g}, not {value!r}")
    return float(value)


def _terms(raw: dict, where: str) -> dict[str, tuple[Term, ...]]:
    parsed: dict[str, list[Term]] = {}
    for key in TERM_KEYS:
        if key not in raw:
            continue
        values = raw[key]
        if not isinstance(values, list):
            raise ConfigError(f"{where}.{key}", "must be a list of terms")
        parsed[key] = [parse_term(v, f"{where}.{key}[{i}]") for i, v in enumerate(values)]
    common = parsed.pop("any", [])
    out = {}
    for lang in LANGS:
        seen = set()
        merged = []
        for t in parsed.get(lang, []) + common:
            if t.text.lower() not in seen:
                seen.add(t.text.lower())
                merged.append(t)
        out[lang] = tuple(merged)
    return out


def _concept(value: object, where: str) -> str:
    if not isinstance(value, str) or (value and not _CONCEPT.match(value)):
        raise ConfigError(where, "must be a lower-case id such as \"csto\" or \"place\" (or \"\" for none)")
    return value


def parse_group(name: str, raw: object, where: str) -> Group:
    if not _GROUP.match(name):
        raise ConfigError(where, "group names are letters, digits, _ and - (starting with a letter)")
    if not isinstance(raw, dict):
        raise ConfigError(where, "must be a table with en / ru / kk / any term lists")
    for key in raw:
        if key not in GROUP_KEYS:
            raise ConfigError(f"{where}.{key}", "unknown key (allowed: " + ", ".join(sorted(GROUP_KEYS)) + ")")
    weight = _number(raw.get("weight", 1.0), f"{where}.weight")
    concept = _concept(raw.get("concept", name.lower()), f"{where}.concept")
    terms = _terms(raw, where)
    parts = []
    parts_raw = raw.get("parts", {})
    if not isinstance(parts_raw, dict):
        raise ConfigError(f"{where}.parts", "must be a table of named parts")
    for part_name, part_raw in parts_raw.items():
        pwhere = f"{where}.parts.{part_name}"
        if not _CONCEPT.match(part_name):
            raise ConfigError(pwhere, "part names are lower-case ids such as almaty")
        if not isinstance(part_raw, dict):
            raise ConfigError(pwhere, "must be a table with en / ru / kk / any term lists")
        for key in part_raw:
            if key not in TERM_KEYS:
                raise ConfigError(f"{pwhere}.{key}", "unknown key (allowed: " + ", ".join(TERM_KEYS) + ")")
        pterms = _terms(part_raw, pwhere)
        if not any(pterms.values()):
            raise ConfigError(pwhere, "has no terms")
        parts.append(Part(name=part_name, concept=f"{concept or name.lower()}:{part_name}", terms=pterms))
    group = Group(name=name, concept=concept, weight=weight, terms=terms, parts=tuple(parts))
    if group.term_count() == 0:
        raise ConfigError(where, "has no terms (give en, ru, kk or any lists, or parts)")
    return group


def parse_topic(raw: dict, where: str) -> Topic:
    topic_id = raw.get("id")
    if not isinstance(topic_id, str) or not _ID.match(topic_id):
        raise ConfigError(f"{where}.id", "must be a short lower-case id such as kz-unrest")
    for key in raw:
        if key not in TOPIC_KEYS:
            raise ConfigError(f"{where}.{key}", "unknown key (allowed: " + ", ".join(sorted(TOPIC_KEYS)) + ")")
    name = raw.get("name", topic_id)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name", "must be a non-empty string")
    names_raw = raw.get("names", {})
    if not isinstance(names_raw, dict):
        raise ConfigError(f"{where}.names", "must be a table of names by language, e.g. {ru = \"...\", kk = \"...\"}")
    for code, text in names_raw.items():
        if code not in LANGS:
            raise ConfigError(f"{where}.names.{code}", "must be one of " + ", ".join(LANGS))
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{where}.names.{code}", "must be a non-empty string")
    names = tuple((code, text.strip()) for code, text in names_raw.items())
    groups_raw = raw.get("groups", {})
    if not isinstance(groups_raw, dict):
        raise ConfigError(f"{where}.groups", "must be a table of named groups ([topics.groups.NAME])")
    groups = tuple(parse_group(g, graw, f"{where}.groups.{g}") for g, graw in groups_raw.items())
    threshold = _number(raw.get("threshold", 0.0), f"{where}.threshold", minimum=0)
    if "match" not in raw:
        if groups:
            raise ConfigError(f"{where}.match", "is required when a topic has groups (e.g. \"place AND event\")")
        return Topic(id=topic_id, name=name, threshold=threshold, raw=raw, names=names)
    expr = parse_expression(raw["match"], f"{where}.match")
    known = {g.name for g in groups}
    used = expression_names(expr)
    for missing in sorted(used - known):
        raise ConfigError(f"{where}.match", f"unknown group {missing!r} (defined: {', '.join(sorted(known)) or 'none'})")
    for unused in sorted(known - used):
        raise ConfigError(f"{where}.groups.{unused}", "is defined but not used in match")
    if not positive_names(expr):
        raise ConfigError(f"{where}.match", "needs at least one group that is not under NOT")
    if threshold > 0:
        best = sum(g.weight for g in groups if g.name in positive_names(expr) and g.weight > 0)
        if best < threshold:
            raise ConfigError(f"{where}.threshold",
                              f"can never be reached: the positive groups weigh {best:g} together")
    return Topic(id=topic_id, name=name, groups=groups, expr=expr, threshold=threshold, raw=raw, names=names)
