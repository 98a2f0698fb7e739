"""The hook on a worker paces itself on Cloudflare's rate-limit headers instead of drawing 429s (simulator)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator

import pytest

from airflow_provider_cftunnel.exceptions import CloudflareNotFoundError, CloudflareRateLimitError
from airflow_provider_cftunnel.ratelimit import clear_quotas
from tests.support.fakes import fast_hook

MISSING_CONNECTOR = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(autouse=True)
def fresh_quotas() -> Iterator[None]:
    """Forget every quota around each test: a simulator's port may be reused by a later test."""
    clear_quotas()
    yield
    clear_quotas()


#: The shared fast hook with a longer read timeout (a call may wait for the pool).
hook = functools.partial(fast_hook, timeout=(2.0, 5.0))


@pytest.mark.slow
def test_many_calls_wait_for_the_pool_instead_of_drawing_429s(ready_sim, caplog) -> None:
    ready_sim.set_rate_limit(20, period=6)
    caplog.set_level(logging.INFO, logger="airflow_provider_cftunnel.ratelimit")
    worker = hook()
    started = time.monotonic()
    connectors = [worker.get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id) for _ in range(45)]
    elapsed = time.monotonic() - started
    assert len(connectors) == 45
    assert all(c.id == ready_sim.connector_id for c in connectors)
    assert ready_sim.rate_limited_count == 0
    statuses = [r.status for r in ready_sim.requests_matching("/connectors/")]
    assert statuses == [200] * 45, "every call succeeded at the first attempt"
    assert elapsed > 6, "45 calls against 20 per 6 s: it waited for the pool"
    assert worker.quota.latest is not None
    assert worker.quota.latest.quota == 20
    pacing = [r.getMessage() for r in caplog.records if "pacing" in r.getMessage()]
    assert len(pacing) == 1, pacing  # once per episode, not per request
    assert pacing[0].startswith("Cloudflare reports ")


def test_every_hook_of_a_credential_shares_one_quota(ready_sim, monkeypatch) -> None:
    ready_sim.set_rate_limit(50, period=60)
    first, second = hook(), hook()
    assert first.quota is second.quota
    first.get_tunnel(ready_sim.tunnel_id)
    assert second.quota.latest.remaining == 49
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", ready_sim.connection_json("account_token"))
    assert hook().quota is not first.quota, "another credential, another view (of the same pool)"


def test_error_answers_update_the_quota_too(ready_sim) -> None:
    ready_sim.set_rate_limit(30, period=60)
    worker = hook(max_retries=0, max_retry_after=0.2)  # waits for the quota at most 0.2 s
    with pytest.raises(CloudflareNotFoundError):
        worker.get_tunnel_connector(ready_sim.tunnel_id, MISSING_CONNECTOR)
    assert worker.quota.latest.remaining == 29
    assert ready_sim.spend_rate_limit(30) == 29  # the dashboard crossed the limit: the whole user is locked out
    with pytest.raises(CloudflareRateLimitError):
        worker.get_tunnel(ready_sim.tunnel_id)
    assert ready_sim.rate_limited_count == 1
    assert worker.quota.latest.remaining == 0
    assert worker.quota.delay() == pytest.approx(60, abs=1.5), "the next call would wait for the lockout's end"


def test_the_wait_is_bounded(ready_sim) -> None:
    ready_sim.set_rate_limit(2, period=60)
    worker = hook(max_retries=0, max_retry_after=0.5)
    worker.get_tunnel(ready_sim.tunnel_id)  # 1 left: the reserve
    started = time.monotonic()
    worker.get_tunnel(ready_sim.tunnel_id)  # waited 0.5 s, then spent the reserve
    assert 0.4 <= time.monotonic() - started < 5
    assert ready_sim.rate_limited_count == 0


def test_legacy_headers_are_read(ready_sim) -> None:
    ready_sim.set_rate_limit(10, period=30, headers="legacy")
    worker = hook()
    worker.get_tunnel(ready_sim.tunnel_id)
    latest = worker.quota.latest
    assert (latest.remaining, latest.quota, latest.reset) == (9, 10, 30.0)


def test_without_headers_nothing_changes(ready_sim) -> None:
    ready_sim.set_rate_limit(100, period=60, headers="none")
    worker = hook()
    started = time.monotonic()
    for _ in range(30):
        worker.get_tunnel(ready_sim.tunnel_id)
    assert time.monotonic() - started < 5, "no headers: no pacing"
    assert worker.quota.latest is None
