"""Publish a command the request just wrote to the outbox, without making the user wait for a
broker that is down: the fan-out workers' relay publishes whatever this could not."""

from __future__ import annotations

import asyncio
import logging

from functions import resources
from shared import outbox
from shared.settings import get_settings

log = logging.getLogger("sendpy.api")

# Long enough for a healthy broker's acknowledgement, short next to the gateway's 30 s.
HANDOVER_SECONDS = 3.0


async def send_commands(records: list[tuple[bytes, bytes]]) -> None:
    producer = await resources.producer()
    topic = get_settings().topic_campaigns
    sent = [await producer.send(topic, value=value, key=key) for key, value in records]
    await asyncio.gather(*sent)


async def hand_over(key: bytes) -> None:
    """Best effort: the command is safe in the outbox whatever happens here."""
    try:
        await asyncio.wait_for(outbox.relay(await resources.db(), send_commands, key=key), HANDOVER_SECONDS)
    except Exception:
        log.warning("command left for the outbox relay", extra={"key": key.decode()}, exc_info=True)
