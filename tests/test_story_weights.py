"""stories.Weights: key counts over the window, kept per day and taken off when a day leaves it."""

from __future__ import annotations

import random

from bot.stories import Weights, fingerprint

WORDS = {"en": "protest curfew internet troops border airport bank oil strike court".split(),
         "ru": "протест комендантский интернет войска граница аэропорт банк нефть забастовка суд".split()}


def _fp(rng: random.Random, lang: str):
    words = rng.sample(WORDS[lang], 4)
    return fingerprint(" ".join(words).capitalize() + f" in Almaty {rng.randint(1, 9)}", "", lang)


def test_counts_equal_a_recount_of_the_items_in_the_window():
    rng = random.Random(7)
    w = Weights(window_hours=48)
    added = []  # (day, fp)
    for step in range(400):
        day = 100 + step // 40  # ten days, forty items each
        fp = _fp(rng, rng.choice(["en", "ru"]))
        w.add(fp, day)
        added.append((day, fp))
    newest = added[-1][0]
    kept = [fp for day, fp in added if day >= newest - w.window_days]
    assert w.items == len(kept) < len(added)
    keys = {("", a) for fp in kept for a in fp.anchors} | {(fp.lang + ":", t) for fp in kept for t in fp.tokens}
    for table, key in keys:
        expect = sum(1 for fp in kept if (key in fp.anchors if table == "" else
                                          fp.lang + ":" == table and key in fp.tokens))
        assert w.df(table + key) == expect, (table, key)
    # keys only older days had are gone from the tables, not left at zero
    assert all(n > 0 for table in w.counts.values() for n in table.values())
