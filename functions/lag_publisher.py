"""Scheduled Lambda (every minute): read the sender group's consumer lag, publish it to
CloudWatch, and set the sender service's desired count from it.

MSK's own lag metrics go missing during rebalances; reading the lag from the brokers here, and
holding the worker count when it cannot be read, keeps scaling deliberate (shared/scaling.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from shared import broker
from shared.scaling import ScalingPolicy, desired_workers
from shared.settings import Settings, SettingsError, get_settings

log = logging.getLogger("sendpy.lag")


def _policy(settings: Settings) -> ScalingPolicy:
    return ScalingPolicy(per_worker_lag=settings.scale_per_worker_lag, min_workers=settings.scale_min,
                         max_workers=settings.scale_max)


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    import boto3

    settings = get_settings()
    cluster, service = settings.ecs_cluster, settings.ecs_service
    if not cluster or not service:
        raise SettingsError("SENDPY_ECS_CLUSTER and SENDPY_ECS_SERVICE must name the sender service to scale")
    try:
        lag_by_partition: dict[int, int] | None = asyncio.run(
            broker.consumer_lag(settings, settings.consumer_group_sender, settings.topic_deliveries))
    except Exception:
        log.warning("consumer lag unavailable; holding the worker count", exc_info=True)
        lag_by_partition = None
    lag = sum(lag_by_partition.values()) if lag_by_partition is not None else None
    ecs = boto3.client("ecs")
    described = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
    current = int(described["desiredCount"])
    changed_at = described["deployments"][0]["updatedAt"]
    since = (dt.datetime.now(dt.UTC) - changed_at).total_seconds()
    wanted = desired_workers(lag, settings.delivery_partitions, current, since, _policy(settings))
    if lag is not None:
        boto3.client("cloudwatch").put_metric_data(Namespace="Sendpy", MetricData=[
            {"MetricName": "DeliveryLag", "Value": lag, "Unit": "Count",
             "Dimensions": [{"Name": "Service", "Value": service}]},
        ])
    if wanted != current:
        ecs.update_service(cluster=cluster, service=service, desiredCount=wanted)
    return {"lag": lag, "current": current, "desired": wanted}
