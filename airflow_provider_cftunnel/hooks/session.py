"""The hook's ``requests.Session``: credentials, User-Agent, retries and the environment's proxy settings."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import requests
from requests.adapters import HTTPAdapter

from airflow_provider_cftunnel import __version__
from airflow_provider_cftunnel.hooks.retry import RETRY_STATUSES, CloudflareRetry

if TYPE_CHECKING:
    from airflow_provider_cftunnel.hooks.credentials import CloudflareCredentials

__all__ = ["USER_AGENT", "CloudflareAuth", "build_session"]

USER_AGENT = f"airflow-provider-cftunnel/{__version__}"


class CloudflareAuth(requests.auth.AuthBase):
    """
    Add the credential headers to each request; the ``repr`` shows no secret.

    :param credentials: The credentials whose headers are sent.
    """

    def __init__(self, credentials: CloudflareCredentials) -> None:
        self._headers = credentials.headers()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Add the headers to ``request`` and return it."""
        request.headers.update(self._headers)
        return request

    def __repr__(self) -> str:
        return "<CloudflareAuth ***>"


def build_session(
    credentials: CloudflareCredentials, *, max_retries: int, backoff_factor: float, max_retry_after: float
) -> requests.Session:
    """
    Return a session that authenticates with ``credentials``, retries GETs and never follows redirects.

    Proxies and the CA bundle are read from the environment once, here, rather than on every call.

    :param credentials: The connection's credentials.
    :param max_retries: How many times a failed attempt is retried (0: never).
    :param backoff_factor: Base of the exponential backoff between retries, in seconds.
    :param max_retry_after: The longest ``Retry-After`` honoured, in seconds.
    """
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(credentials.base_url))
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if ca_bundle:
        session.verify = ca_bundle
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
    session.auth = CloudflareAuth(credentials)
    retry = CloudflareRetry(
        total=max_retries,
        connect=max_retries,
        read=max_retries,
        status=max_retries,
        redirect=0,
        allowed_methods=frozenset(["GET"]),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_factor,
        backoff_max=60.0,
        backoff_jitter=backoff_factor,
        raise_on_status=False,
        raise_on_redirect=False,
        respect_retry_after_header=True,
        max_retry_after=max_retry_after,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
