"""Message sizes on the wire: what smtp-source sends for `-l N`, and what one campaign message is.

A tiny SMTP listener (no pipelining, enough for smtp-source) records the DATA payload of each
message — the bytes between the 354 reply and the closing "." line, dot-stuffing included — so
the limit run can be given a `-l` that puts as many bytes on the wire as a campaign message.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid

from sendpy.devstack.ports import free_port


async def _capture_smtp_source(length: int) -> int:
    """Run `smtp-source -m 1 -l length` against a listener here; the DATA payload size it sent."""
    sizes: list[int] = []

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 capture ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await writer.drain()
                size = 0
                while (body := await reader.readline()) != b".\r\n":
                    if not body:
                        return
                    size += len(body)
                sizes.append(size)
                writer.write(b"250 ok\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    port = free_port()
    server = await asyncio.start_server(session, "127.0.0.1", port)
    async with server:
        proc = await asyncio.create_subprocess_exec(
            "smtp-source", "-s", "1", "-m", "1", "-l", str(length), "-f", "bench@example.com",
            "-t", "rcpt@example.com", f"127.0.0.1:{port}", stdout=subprocess.DEVNULL)
        await asyncio.wait_for(proc.wait(), 30)
    if len(sizes) != 1:
        raise RuntimeError(f"smtp-source sent {len(sizes)} messages to the capture listener, not 1")
    return sizes[0]


def smtp_source_length_for(target_bytes: int) -> tuple[int, int, int]:
    """(-l value, smtp-source's header overhead, DATA bytes smtp-source then sends) for a DATA payload of
    `target_bytes`: smtp-source adds its own headers (From, To, Date, Message-Id) to `-l` payload bytes."""
    probe = 2048
    overhead = asyncio.run(_capture_smtp_source(probe)) - probe
    length = max(target_bytes - overhead, 1)
    sent = asyncio.run(_capture_smtp_source(length))
    return length, overhead, sent


def campaign_message_bytes(campaign_id: str, position: int, email: str, fields: dict[str, object]) -> int:
    """DATA payload of one real campaign message: rendered exactly as the sender workers render it
    (shared/delivery/scheduler.py: the campaign and sender from Postgres, the unsubscribe link
    signed with the workers' key), then dot-stuffed as the wire carries it (without the "." line)."""
    return asyncio.run(_render(campaign_id, position, email, fields))


async def _render(campaign_id: str, position: int, email: str, fields: dict[str, object]) -> int:
    from shared import smtp_accounts
    from shared.campaigns import states
    from shared.db import create_pool
    from shared.mail.compose import CampaignContent, CompiledCampaign
    from shared.mail.pipelining import dot_stuff
    from shared.settings import load_settings
    from shared.unsubscribe import Unsubscriber, signing_key

    settings = load_settings()
    db = await create_pool(settings, max_size=1)
    try:
        async with db.acquire() as conn:
            campaign = await states.load_for_sending(conn, uuid.UUID(campaign_id))
            assert campaign is not None and campaign.sender_id is not None
            sender = await smtp_accounts.load(conn, campaign.sender_id)
            assert sender is not None
    finally:
        await db.close()
    content = CampaignContent(str(campaign.id), sender.from_email, sender.from_name,
                              campaign.subject, campaign.html, campaign.text)
    unsubscriber = Unsubscriber(signing_key(settings), settings.public_base_url, campaign.id, campaign.user_id)
    message = CompiledCampaign(content, unsubscriber=unsubscriber).render(position, email, fields)
    return len(dot_stuff(message)) - len(b".\r\n")  # the end marker is not payload, as for smtp-source
