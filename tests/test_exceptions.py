from __future__ import annotations

import pickle

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_cftunnel.exceptions import (
    CloudflareAPIError,
    CloudflareAuthError,
    CloudflareConfigError,
    CloudflareNotFoundError,
    CloudflareRateLimitError,
    means_not_ready,
)


def test_hierarchy():
    for cls in (CloudflareAuthError, CloudflareNotFoundError, CloudflareRateLimitError, CloudflareConfigError):
        assert issubclass(cls, CloudflareAPIError)
    assert issubclass(CloudflareAPIError, AirflowException)
    assert issubclass(CloudflareConfigError, ValueError)


def test_carries_status_and_errors():
    error = CloudflareAuthError("x", status_code=403, errors=[{"code": 10000, "message": "Authentication error"}])
    assert error.status_code == 403
    assert error.errors == [{"code": 10000, "message": "Authentication error"}]
    assert error.codes == [10000]


def test_survives_pickling():
    error = CloudflareRateLimitError("slow down", errors=[{"code": 971, "message": "m"}], retry_after=12.0)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is CloudflareRateLimitError
    assert str(copy) == "slow down"
    assert copy.status_code == 429
    assert copy.codes == [971]
    assert copy.retry_after == 12.0


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (CloudflareNotFoundError("x", status_code=404, errors=[{"code": 1003, "message": "m"}]), True),
        (CloudflareNotFoundError("x", status_code=404, errors=[{"code": 7003, "message": "m"}]), False),
        (CloudflareRateLimitError("x"), True),
        (CloudflareAPIError("x", status_code=502), True),
        (CloudflareAPIError("no answer"), True),
        (CloudflareAPIError("garbled", status_code=200, transient=True), True),
        (CloudflareAPIError("bad request", status_code=400), False),
        (CloudflareAPIError("success false", status_code=200), False),
        (CloudflareAuthError("x", status_code=403), False),
        (CloudflareAuthError("x", status_code=401), False),
        (CloudflareConfigError("bad id"), False),
    ],
)
def test_means_not_ready(error, expected):
    assert means_not_ready(error) is expected
