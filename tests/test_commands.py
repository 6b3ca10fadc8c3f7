"""The commands that travel through Kafka: round trips, and garbage refused as malformed."""

from __future__ import annotations

import uuid

import pytest

from shared.commands import CampaignCommand, DeliveryBatch, MalformedWork, batch_ranges, campaign_of


def test_work_messages_round_trip_and_reject_garbage() -> None:
    batch = DeliveryBatch(uuid.uuid4(), 9, 1, 50)
    assert DeliveryBatch.decode(batch.encode()) == batch
    assert batch.key == b"9"
    spread = DeliveryBatch(uuid.uuid4(), 9, 51, 100, spread=True)
    assert DeliveryBatch.decode(spread.encode()) == spread and spread.key == b"9:51"
    command = CampaignCommand(uuid.uuid4(), "resume")
    assert CampaignCommand.decode(command.encode()) == command
    for garbage in (b"", b"not json", b"{}", b'{"campaign_id": "x"}'):
        with pytest.raises(MalformedWork):
            DeliveryBatch.decode(garbage)
        with pytest.raises(MalformedWork):
            CampaignCommand.decode(garbage)
    with pytest.raises(MalformedWork):
        DeliveryBatch.decode(DeliveryBatch(uuid.uuid4(), 1, 5, 4).encode())


def test_batch_ranges_cover_everything_once() -> None:
    assert batch_ranges(1, 10, 4) == [(1, 4), (5, 8), (9, 10)]
    assert batch_ranges(1, 3, 50) == [(1, 3)]
    covered = [p for a, b in batch_ranges(1, 1001, 100) for p in range(a, b + 1)]
    assert covered == list(range(1, 1002))


def test_the_campaign_of_a_record_is_found_when_it_is_well_formed() -> None:
    campaign_id = uuid.uuid4()
    assert campaign_of(DeliveryBatch(campaign_id, 3, 1, 50).encode()) == campaign_id
    assert campaign_of(CampaignCommand(campaign_id, "resume").encode()) == campaign_id
    assert campaign_of(b"\x00 not json") is None
    assert campaign_of(b'{"kind": "campaign", "campaign_id": 7}') is None
