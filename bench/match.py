"""Matching quality and speed: ``.venv/bin/python -m bench.match``.

Prints precision, recall and F1 per topic and language on the labelled
development set (tests/data/match_dev.jsonl), then the throughput of
Matcher.match over the same items with the three configured topics and 1,000
synthetic watch words, against a baseline measured in the same run (a plain
loop that only tokenises the same texts with a regular expression).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from pathlib import Path

from bot import config as config_mod
from bot.language import to_cyrillic
from bot.match import Matcher, WatchWord
from bot.models import LANGS

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "tests" / "data" / "match_dev.jsonl"


def load_dev(path: Path = DEV) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def scores(matcher: Matcher, items: list[dict], topic_ids: list[str]) -> dict[tuple[str, str], dict]:
    """(topic, lang) -> {tp, fp, fn, precision, recall, f1, errors}."""
    table: dict[tuple[str, str], dict] = {
        (t, lang): {"tp": 0, "fp": 0, "fn": 0, "errors": []} for t in topic_ids for lang in LANGS
    }
    for item in items:
        got = {m.topic for m in matcher.match(item["title"], item["summary"], item["lang"])}
        want = set(item["topics"])
        for t in topic_ids:
            cell = table[(t, item["lang"])]
            if t in got and t in want:
                cell["tp"] += 1
            elif t in got:
                cell["fp"] += 1
                cell["errors"].append(("FP", item["title"]))
            elif t in want:
                cell["fn"] += 1
                cell["errors"].append(("FN", item["title"]))
    for cell in table.values():
        tp, fp, fn = cell["tp"], cell["fp"], cell["fn"]
        cell["precision"] = tp / (tp + fp) if tp + fp else 1.0
        cell["recall"] = tp / (tp + fn) if tp + fn else 1.0
        p, r = cell["precision"], cell["recall"]
        cell["f1"] = 2 * p * r / (p + r) if p + r else 0.0
    return table


def synthetic_watchwords(n: int, seed: int = 7) -> list[WatchWord]:
    """n distinct watch words: names and words in the three languages, with expansions."""
    rng = random.Random(seed)
    syll_lat = ["ka", "ra", "bek", "zhan", "nur", "tal", "mir", "sar", "ay", "dos", "ken", "ul", "tas", "ber", "gul"]
    out = []
    seen = set()
    while len(out) < n:
        word = "".join(rng.choice(syll_lat) for _ in range(rng.randint(2, 4))).capitalize()
        if word in seen:
            continue
        seen.add(word)
        cyr = to_cyrillic(word).capitalize()
        out.append(WatchWord(id=len(out) + 1, chat_id=1000 + len(out) % 50, word=word, lang="en",
                             expansions={"en": [word], "ru": [cyr], "kk": [cyr]}))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config.toml"))
    parser.add_argument("--watchwords", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0, help="time budget per throughput run")
    parser.add_argument("--errors", action="store_true", help="list the misclassified items")
    args = parser.parse_args(argv)

    cfg = config_mod.load(args.config)
    topics = list(cfg.topics)
    topic_ids = [t.id for t in topics]
    items = load_dev()
    matcher = Matcher(topics)
    table = scores(matcher, items, topic_ids)

    per_lang = ", ".join(f"{lang} {sum(i['lang'] == lang for i in items)}" for lang in LANGS)
    hard = sum(bool(i.get("hard_negative")) for i in items)
    print(f"development set: {len(items)} items ({per_lang}), hard negatives {hard}")
    print(f"{'topic':<20} {'lang':<4} {'tp':>3} {'fp':>3} {'fn':>3} {'precision':>9} {'recall':>7} {'F1':>6}")
    for t in topic_ids:
        for lang in LANGS:
            c = table[(t, lang)]
            print(f"{t:<20} {lang:<4} {c['tp']:>3} {c['fp']:>3} {c['fn']:>3} {c['precision']:>9.3f} {c['recall']:>7.3f} {c['f1']:>6.3f}")
    worst = min(table.values(), key=lambda c: c["f1"])
    print(f"lowest F1: {worst['f1']:.3f}")
    if args.errors:
        for (t, lang), c in table.items():
            for kind, title in c["errors"]:
                print(f"  {kind} {t} {lang}: {title}")

    # -- throughput -------------------------------------------------------------
    watchwords = synthetic_watchwords(args.watchwords)
    # a few watch words that do occur in the texts, so the watch path is exercised
    watchwords[:3] = [
        WatchWord(id=1, chat_id=1, word="Almaty", lang="en", expansions={"ru": ["Алматы"], "kk": ["Алматы"]}),
        WatchWord(id=2, chat_id=1, word="Tokayev", lang="en", expansions={"ru": ["Токаев"], "kk": ["Тоқаев"]}),
        WatchWord(id=3, chat_id=2, word="WhatsApp", lang="en", expansions={}),
    ]
    t0 = time.perf_counter()
    full = Matcher(topics, watchwords)
    compile_s = time.perf_counter() - t0
    work = [(i["title"], i["summary"], i["lang"]) for i in items]
    # warm the per-word caches once, as a running service would be
    for title, summary, lang in work:
        full.match(title, summary, lang)

    def run(fn) -> tuple[int, float]:
        """Best of five timed passes (CPU time of this process, so other load on the
        machine counts less); returns (items, seconds) of the best pass."""
        best = (0, float("inf"))
        for _ in range(5):
            n = 0
            start = time.process_time()
            while True:
                for title, summary, lang in work:
                    fn(title, summary, lang)
                n += len(work)
                elapsed = time.process_time() - start
                if elapsed >= args.seconds / 5:
                    break
            if n / elapsed > best[0] / best[1]:
                best = (n, elapsed)
        return best

    word_re = re.compile(r"[^\W_]+")

    def baseline(title: str, summary: str, lang: str) -> None:
        word_re.findall(title.lower())
        word_re.findall(summary.lower())

    n, elapsed = run(full.match)
    rate = n / elapsed
    bn, belapsed = run(baseline)
    brate = bn / belapsed
    matched = sum(bool(full.match(*w)) for w in work)
    print(f"throughput: {rate:,.0f} items/s on one core ({len(topics)} topics, {len(watchwords)} watch words; "
          f"best pass {n:,} items in {elapsed:.2f} s CPU; compile {compile_s * 1000:.0f} ms; "
          f"{matched}/{len(work)} items matched)")
    print(f"baseline (regex tokenising only): {brate:,.0f} items/s; matcher/baseline = {rate / brate:.2f}")
    print(f"target 20,000 items/s: {'met' if rate >= 20000 else 'NOT met'} "
          f"(load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
