"""The commands that travel through Kafka between processes. They carry ids, never addresses or secrets."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass


class MalformedWork(ValueError):
    """Bytes that are not a unit of work we understand (they go to the dead-letter topic)."""


@dataclass(frozen=True)
class CampaignCommand:
    """Start or resume sending a campaign: the fan-out publishes its open recipients."""

    campaign_id: uuid.UUID
    action: str = "start"  # "start" | "resume"

    @property
    def key(self) -> bytes:
        return str(self.campaign_id).encode()

    def encode(self) -> bytes:
        return json.dumps({"kind": "campaign", "campaign_id": str(self.campaign_id), "action": self.action}).encode()

    @classmethod
    def decode(cls, raw: bytes) -> CampaignCommand:
        try:
            data = json.loads(raw)
            command = cls(uuid.UUID(str(data["campaign_id"])), str(data.get("action", "start")))
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedWork(f"not a campaign command: {exc}") from None
        if command.action not in ("start", "resume"):
            raise MalformedWork(f"unknown campaign action {command.action!r}")
        return command


@dataclass(frozen=True)
class InspectUpload:
    """Count a large contact file. Written by earlier versions only: files are now queued for the
    fan-out's file readers in Postgres (file_jobs.py), and the fan-out hands these over to them."""

    upload_id: uuid.UUID

    @property
    def key(self) -> bytes:
        return str(self.upload_id).encode()

    def encode(self) -> bytes:
        return json.dumps({"kind": "inspect_upload", "upload_id": str(self.upload_id)}).encode()


def decode_command(raw: bytes) -> CampaignCommand | InspectUpload:
    """A record of the commands topic: a campaign command, or an upload to inspect."""
    try:
        data = json.loads(raw)
        kind = data.get("kind", "campaign") if isinstance(data, dict) else None
    except ValueError as exc:
        raise MalformedWork(f"not JSON: {exc}") from None
    if kind == "inspect_upload":
        try:
            return InspectUpload(uuid.UUID(str(data["upload_id"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedWork(f"not an upload command: {exc}") from None
    return CampaignCommand.decode(raw)


@dataclass(frozen=True)
class DeliveryBatch:
    """Recipients `first`..`last` (positions, inclusive) of a campaign, sent by one sender."""

    campaign_id: uuid.UUID
    sender_id: int
    first: int
    last: int
    spread: bool = False  # the sender has no rate limits, so its batches may go to any worker

    @property
    def key(self) -> bytes:
        # A rate-limited sender's mail lands on one partition, so one worker at a time enforces
        # its limits without a cross-worker lock. An unlimited one (a corporate relay) is spread
        # over every partition and worker.
        if self.spread:
            return f"{self.sender_id}:{self.first}".encode()
        return str(self.sender_id).encode()

    def encode(self) -> bytes:
        data = asdict(self)
        data["campaign_id"] = str(self.campaign_id)
        return json.dumps(data).encode()

    @classmethod
    def decode(cls, raw: bytes) -> DeliveryBatch:
        try:
            data = json.loads(raw)
            batch = cls(uuid.UUID(str(data["campaign_id"])), int(data["sender_id"]), int(data["first"]),
                        int(data["last"]), bool(data.get("spread", False)))
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedWork(f"not a delivery batch: {exc}") from None
        if batch.first < 1 or batch.last < batch.first:
            raise MalformedWork(f"empty or negative range {batch.first}..{batch.last}")
        return batch


def batch_ranges(first: int, last: int, size: int) -> list[tuple[int, int]]:
    """Split positions first..last into consecutive ranges of at most `size`."""
    return [(start, min(start + size - 1, last)) for start in range(first, last + 1, size)]


# What hands delivery batches to the broker (the workers pass their producer's send).
Publish = Callable[[list[DeliveryBatch]], Awaitable[None]]


def campaign_of(raw: bytes) -> uuid.UUID | None:
    """The campaign a record is about, when it is a well-formed campaign command or delivery batch."""
    for decode in (DeliveryBatch.decode, decode_command):
        try:
            command = decode(raw)
        except MalformedWork:
            continue
        campaign_id = getattr(command, "campaign_id", None)
        if isinstance(campaign_id, uuid.UUID):
            return campaign_id
    return None


def upload_of(raw: bytes) -> uuid.UUID | None:
    """The upload a record is about, when it is a well-formed inspection command."""
    try:
        command = decode_command(raw)
    except MalformedWork:
        return None
    return command.upload_id if isinstance(command, InspectUpload) else None
