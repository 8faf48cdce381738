"""Benchmark: a digest fanned out to many subscribers through the local Bot API server.

    .venv/bin/python -m bench.deliver                    # 5,000 subscribers (about 3 minutes)
    .venv/bin/python -m bench.deliver --subscribers 600  # a quick check

The server (tests/botapi.py) runs in its own process so it does not share the
sender's interpreter. Measured in one run:

1. limit 30/s (Telegram's): the outbox Sender at its defaults (``--client``
   lean or httpx): messages/s
   achieved (target >= 95% of 30), 429s received (target 0), lost/repeated;
2. limit 1,000/s: the Sender configured for 1,000/s: its own ceiling
   (target >= 500 msg/s), 429s, lost/repeated;
3. limit off: the Sender unpaced (``global_per_second`` 10^6), where nothing
   but the sender (and the server) sets the rate: the real ceiling (two runs of
   each variant, alternated; the better one is shown);
4. baselines: a naive sequential ``send_message`` loop (no outbox, no pacing,
   no retries) against the 30/s and 1,000/s limits.

The 1,000/s Sender runs with PTB's default httpx client and with
:class:`bot.delivery.LeanRequest`; the unpaced one runs with LeanRequest twice:
as the outbox sender does (JSON bodies rendered from the rows,
``LeanRequest.post_message``) and, as a same-run baseline, through PTB's
``Bot.do_api_request`` (how it sent before). CPU per message is given for the
sender (this process) and for the server (its own process, from /proc), so it
shows which side sets the pace. Peak RSS is the benchmark process's (sender,
SQLite, PTB); the server's is printed separately.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import telegram

from bot.config import DeliveryConfig
from bot.delivery import LeanRequest, Sender
from bot.store import Store
from tests.botapi import BotAPIServer

REPO = Path(__file__).resolve().parent.parent
FIRST_CHAT = 100_000


def digest_text(chat: int) -> str:
    """The day's digest (about 2 KB of Telegram HTML) in the reader's language (one of three)."""
    lang = ("EN", "RU", "KK")[chat % 3]
    lines = [f"<b>Daily digest</b> · {lang}", ""]
    for k in range(1, 13):
        lines.append(f"{k}. <b>Regional report {k}</b>: officials in the capital discussed item {k} "
                     f"&amp; its follow-up — <a href=\"https://news.example.kz/{lang.lower()}/{k}\">source</a> "
                     f"<i>{lang} RU</i>")
    return "\n".join(lines)


class RemoteServer:
    """tests/botapi.py in a child process, driven through its /_test endpoints."""

    def __init__(self, global_rate: float):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.botapi", "--global-rate", str(global_rate)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"bench: the Bot API server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/bot"
        self.token = BotAPIServer.DEFAULT_TOKEN

    def _call(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method="POST" if data is not None else "GET")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())["result"]

    def reset(self, **rates) -> None:
        self._call("/_test/reset", {})
        self._call("/_test/rate", rates)

    def stats(self) -> dict:
        return self._call("/_test/stats")

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


def outcome(server: RemoteServer, n: int) -> dict:
    stats = server.stats()
    per_chat = {int(k): v for k, v in stats["sent_per_chat"].items()}
    delivered = sum(1 for c in range(FIRST_CHAT, FIRST_CHAT + n) if per_chat.get(c))
    repeated = sum(v - 1 for v in per_chat.values() if v > 1)
    return {"lost": n - delivered, "repeated": repeated, "429": stats["counters"].get("429", 0)}


async def run_sender(server: RemoteServer, n: int, cfg: DeliveryConfig, db: Path, lean: bool = False,
                     through_ptb: bool = False) -> dict:
    store = Store(db)
    store.enqueue_many([{"chat_id": FIRST_CHAT + i, "kind": "digest", "text": digest_text(FIRST_CHAT + i),
                         "dedup_key": f"digest:{FIRST_CHAT + i}:bench", "disable_preview": True}
                        for i in range(n)])
    request = LeanRequest(pool_size=cfg.max_in_flight + 4) if lean else None
    async with telegram.Bot(server.token, base_url=server.base_url, request=request) as bot:
        sender = Sender(bot, store, cfg)
        if through_ptb:  # the baseline: every message through Bot.do_api_request, as before post_message
            sender._post_message = None
        started, cpu0, server_cpu0 = time.perf_counter(), time.process_time(), server.cpu_seconds()
        report = await sender.run_once()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
        server_cpu = server.cpu_seconds() - server_cpu0
    counts = store.outbox_counts()
    store.close()
    return {"elapsed": elapsed, "rate": report.sent / elapsed, "sent": report.sent,
            "cpu_ms": cpu * 1000 / max(1, report.sent), "server_cpu_ms": server_cpu * 1000 / max(1, report.sent),
            "outbox": counts, **outcome(server, n)}


async def run_naive(server: RemoteServer, n: int) -> dict:
    """The baseline: one send_message after another, errors counted and dropped."""
    errors = 0
    async with telegram.Bot(server.token, base_url=server.base_url) as bot:
        started = time.perf_counter()
        for i in range(n):
            chat = FIRST_CHAT + i
            try:
                await bot.send_message(chat, digest_text(chat), parse_mode="HTML",
                                       link_preview_options=telegram.LinkPreviewOptions(is_disabled=True))
            except telegram.error.TelegramError:
                errors += 1
        elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "rate": (n - errors) / elapsed, "errors": errors, **outcome(server, n)}


def line(name: str, r: dict) -> str:
    return (f"{name:<48} {r['rate']:8.1f} msg/s  {r['elapsed']:7.1f} s  429s {r['429']:5d}  "
            f"lost {r['lost']:5d}  repeated {r['repeated']:3d}")


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Outbox fan-out benchmark through the local Bot API server.")
    parser.add_argument("--subscribers", type=int, default=5000, help="messages in the fan-out (default 5000)")
    parser.add_argument("--fast-subscribers", type=int, default=None,
                        help="messages for the 1,000/s runs (default: same as --subscribers)")
    parser.add_argument("--client", choices=("lean", "httpx"), default="lean",
                        help="PTB request class for the 30/s run (default lean: bot.delivery.LeanRequest)")
    parser.add_argument("--naive-slow", type=int, default=300,
                        help="messages for the naive loop at 30/s (it loses most of them; default 300)")
    args = parser.parse_args(argv)
    n = args.subscribers
    n_fast = args.fast_subscribers or n
    server = RemoteServer(global_rate=30)
    tmp = Path(tempfile.mkdtemp(prefix="bench-deliver-"))
    try:
        print(f"fan-out of {n} digest messages (~{len(digest_text(FIRST_CHAT))} chars each) "
              f"through tests/botapi.py in its own process")
        server.reset(global_rate=30, chat_rate=1, group_per_minute=20)
        slow = await run_sender(server, n, DeliveryConfig(), tmp / "slow.db", lean=args.client == "lean")
        server.reset(global_rate=30, chat_rate=1, group_per_minute=20)
        naive_slow = await run_naive(server, min(n, args.naive_slow))

        fast_cfg = DeliveryConfig(global_per_second=1000, max_in_flight=32)
        server.reset(global_rate=1000, chat_rate=1, group_per_minute=20)
        fast = await run_sender(server, n_fast, fast_cfg, tmp / "fast.db")
        server.reset(global_rate=1000, chat_rate=1, group_per_minute=20)
        lean = await run_sender(server, n_fast, fast_cfg, tmp / "lean.db", lean=True)
        server.reset(global_rate=1000, chat_rate=1, group_per_minute=20)
        naive_fast = await run_naive(server, n_fast)

        open_cfg = DeliveryConfig(global_per_second=1_000_000, max_in_flight=32)
        unpaced_runs: dict[bool, list[dict]] = {True: [], False: []}
        for attempt in range(2):  # alternated, twice each: the machine is shared; the better of two is shown
            for through_ptb in (True, False):
                server.reset(global_rate=0, chat_rate=1, group_per_minute=20)
                unpaced_runs[through_ptb].append(await run_sender(
                    server, n_fast, open_cfg, tmp / f"unpaced-{through_ptb}-{attempt}.db", lean=True,
                    through_ptb=through_ptb))
        unpaced_ptb, unpaced = (max(unpaced_runs[k], key=lambda r: r["rate"]) for k in (True, False))

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print()
        print(line(f"server limit 30/s: outbox Sender ({args.client}) n={n}", slow))
        print(line(f"server limit 30/s: naive loop n={min(n, args.naive_slow)}", naive_slow))
        print(line(f"server limit 1000/s: outbox Sender (httpx) n={n_fast}", fast))
        print(line(f"server limit 1000/s: outbox Sender (LeanRequest) n={n_fast}", lean))
        print(line(f"server limit 1000/s: naive loop n={n_fast}", naive_fast))
        print(line(f"limit off: Sender (Lean via Bot.do_api_request) n={n_fast}", unpaced_ptb))
        print(line(f"limit off: Sender (LeanRequest.post_message) n={n_fast}", unpaced))
        print()
        print(f"30/s: {slow['rate']:.2f} msg/s = {slow['rate'] / 30:.1%} of the limit (target >= 95%), "
              f"429s {slow['429']} (target 0), lost {slow['lost']}, repeated {slow['repeated']}")
        for name, r in (("httpx", fast), ("LeanRequest", lean)):
            print(f"1000/s: sender ceiling with {name} {r['rate']:.0f} msg/s (target >= 500), "
                  f"{r['rate'] / naive_fast['rate']:.2f}x the naive sequential loop "
                  f"({naive_fast['rate']:.0f} msg/s), 429s {r['429']}, lost {r['lost']}, repeated {r['repeated']}")
        for name, runs in (("post_message", unpaced_runs[False]), ("Bot.do_api_request", unpaced_runs[True])):
            print(f"limit off, {name}: " + ", ".join(
                f"{r['rate']:.0f} msg/s (sender {r['cpu_ms']:.2f} ms, server {r['server_cpu_ms']:.2f} ms CPU/msg, "
                f"lost {r['lost']}, repeated {r['repeated']})" for r in runs))
        best_cpu = {k: min(r["cpu_ms"] for r in unpaced_runs[k]) for k in (True, False)}
        pair = min(r["cpu_ms"] + r["server_cpu_ms"] for r in unpaced_runs[False])
        print(f"limit off: sender ceiling {unpaced['rate']:.0f} msg/s with post_message, "
              f"{unpaced_ptb['rate']:.0f} msg/s through Bot.do_api_request (same run, better of two each); "
              f"sender CPU per message {best_cpu[False]:.2f} vs {best_cpu[True]:.2f} ms "
              f"({best_cpu[False] / best_cpu[True]:.2f}x); sender + server {pair:.2f} ms per message "
              f"-> {1000 / pair:.0f} msg/s when the two share one core")
        for name, r in (("30/s", slow), ("1000/s httpx", fast), ("1000/s LeanRequest", lean),
                        ("limit off, via Bot.do_api_request", unpaced_ptb), ("limit off, post_message", unpaced)):
            print(f"CPU per message ({name}): sender {r['cpu_ms']:.2f} ms "
                  f"-> at most {1000 / r['cpu_ms']:.0f} msg/s on one free core; server {r['server_cpu_ms']:.2f} ms")
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"naive loop at 30/s: {naive_slow['errors']} of {min(n, args.naive_slow)} sends failed "
              f"(429) and were lost")
        print(f"peak RSS: benchmark process (sender + SQLite + PTB) {rss:.0f} MB, "
              f"server process {server.rss_mb():.0f} MB")
        print(f"outbox after the runs: 30/s {slow['outbox']}, 1000/s {fast['outbox']}, lean {lean['outbox']}, "
              f"unpaced {' '.join(str(r['outbox']) for k in (True, False) for r in unpaced_runs[k])}")
    finally:
        server.close()


if __name__ == "__main__":
    asyncio.run(main())
