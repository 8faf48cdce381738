"""A sender process for the crash tests in tests/test_delivery.py (killed with SIGKILL there).

    python -m tests.delivery_worker DB BASE_URL TOKEN N RATE IN_FLIGHT

Queues a fan-out of N messages (``fan-out <i>`` to chat 10000+i, idempotent by
dedup key, so a second run queues nothing new) and sends the outbox until idle.
"""

from __future__ import annotations

import asyncio
import sys

import telegram

from bot.config import DeliveryConfig
from bot.delivery import Sender
from bot.store import Store


def main(db: str, base_url: str, token: str, n: int, rate: float, in_flight: int) -> None:
    store = Store(db)
    store.enqueue_many([{"chat_id": 10_000 + i, "kind": "digest", "text": f"fan-out {i}",
                         "dedup_key": f"fanout:{i}"} for i in range(n)])
    cfg = DeliveryConfig(global_per_second=rate, max_in_flight=in_flight)

    async def go() -> None:
        async with telegram.Bot(token, base_url=base_url) as bot:
            await Sender(bot, store, cfg).run_once()

    asyncio.run(go())
    store.close()


if __name__ == "__main__":
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]))
