"""The sender worker keeps its event loop for sending: templates are compiled, and those with
filters or conditions rendered, in threads; a template that stopped passing today's checks pauses
its campaign with the reason."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from shared.mail import template_checks
from shared.mail.compose import CompiledCampaign
from tests.test_delivery_scheduler import ScriptedServer, batch_of, deliverer, make_store


def where_it_ran(monkeypatch: pytest.MonkeyPatch, method: str) -> list[str]:
    threads: list[str] = []
    original = getattr(CompiledCampaign, method)

    def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CompiledCampaign, method, recorded)
    return threads


async def test_templates_with_filters_render_and_compile_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled_in = where_it_ran(monkeypatch, "__init__")
    rendered_in = where_it_ran(monkeypatch, "render")
    store = await make_store(5, html="<p>{{ name|title }}</p>")
    await deliverer(store, ScriptedServer()).deliver(batch_of(store))
    assert store.states() == {"sent": 5}
    assert compiled_in and rendered_in
    assert all(name.startswith("sendpy-render") for name in compiled_in + rendered_in), compiled_in + rendered_in


async def test_plain_fields_render_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered_in = where_it_ran(monkeypatch, "render")
    store = await make_store(5, html="<p>Hi {{ name }}</p>")  # microseconds: a thread hop would cost more
    await deliverer(store, ScriptedServer()).deliver(batch_of(store))
    assert store.states() == {"sent": 5}
    assert rendered_in == [threading.main_thread().name] * 5


async def test_a_template_past_todays_limits_pauses_the_campaign_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Written before the tag limit existed, started, and now picked up by a worker.
    store = await make_store(3, html="<p>{{ name|title }}</p>")
    monkeypatch.setattr(template_checks, "MAX_FILTER_CALLS", 0)
    server = ScriptedServer()
    await deliverer(store, server).deliver(batch_of(store))
    assert store.status == "paused" and not server.accepted
    assert "фильтров и проверок" in store.campaign_reason and "filters and tests" in store.campaign_reason, store.campaign_reason
    assert store.states() == {"pending": 3}


def test_unclosed_table_cells_cost_time_in_proportion_to_the_body() -> None:
    # The final attack: "<td" × 9,900 then 1.96 MB of text held the API's event loop for 31 s
    # (each unclosed `<td` scanned to the end of the body). Linear, it is well under a second.
    from shared.mail.compose import html_to_text

    began = time.monotonic()
    html_to_text("<td" * 9900 + "x" * 1_960_000)
    assert time.monotonic() - began < 5, "quadratic again"
