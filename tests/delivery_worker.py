"""A sender process for the crash tests in tests/test_delivery.py (killed with SIGKILL there).

    python -m tests.delivery_worker DB BASE_URL TOKEN N RATE IN_FLIGHT [httpx|lean]

Queues a fan-out of N messages (``fan-out <i>`` to chat 10000+i, idempotent by
dedup key, so a second run queues nothing new) and sends the outbox until idle,
through PTB's httpx client (default) or bot.delivery.LeanRequest.
"""

from __future__ import annotations

import asyncio
import sys

import telegram

from bot.config import DeliveryConfig
from bot.delivery import LeanRequest, Sender
from bot.store import Store


def main(db: str, base_url: str, token: str, n: int, rate: float, in_flight: int, client: str = "httpx") -> None:
    store = Store(db)
    store.enqueue_many([{"chat_id": 10_000 + i, "kind": "digest", "text": f"fan-out {i}",
                         "dedup_key": f"fanout:{i}"} for i in range(n)])
    cfg = DeliveryConfig(global_per_second=rate, max_in_flight=in_flight)

    async def go() -> None:
        request = LeanRequest(pool_size=in_flight + 4) if client == "lean" else None
        async with telegram.Bot(token, base_url=base_url, request=request) as bot:
            await Sender(bot, store, cfg).run_once()

    asyncio.run(go())
    store.close()


if __name__ == "__main__":
    if len(sys.argv) not in (7, 8) or sys.argv[7:] not in ([], ["httpx"], ["lean"]):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), *sys.argv[7:])
