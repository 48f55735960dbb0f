"""Webhook URLs: each job's URL carries a token only the server can make, and only that job's token is accepted."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from jobs.webhooks import TOKEN_PARAM, WebhookSigner, derive_secret

SIGNER = WebhookSigner(b"server secret", "https://bot.example.com/hooks/")


def token_of(url: str) -> str:
    (token,) = parse_qs(urlsplit(url).query)[TOKEN_PARAM]
    return token


def test_url_names_the_job_under_the_public_base() -> None:
    """The URL is the public base, the route with the endpoint and job ids, and the token."""
    url = SIGNER.url("ep1", "job1")
    assert url.startswith("https://bot.example.com/hooks/runpod/webhook/ep1/job1?token=")


def test_a_jobs_own_token_is_accepted() -> None:
    """The token in a job's URL verifies for that job."""
    assert SIGNER.verify("ep1", "job1", token_of(SIGNER.url("ep1", "job1")))


def test_a_token_is_refused_for_any_other_job_or_endpoint() -> None:
    """One job's token opens no other job's webhook, nor the same job id on another endpoint."""
    token = token_of(SIGNER.url("ep1", "job1"))
    assert not SIGNER.verify("ep1", "job2", token)
    assert not SIGNER.verify("ep2", "job1", token)


def test_another_secret_makes_other_tokens() -> None:
    """A URL signed with another secret (another deployment, a forger) is refused."""
    forged = WebhookSigner(b"guessed secret", "https://bot.example.com")
    assert not SIGNER.verify("ep1", "job1", token_of(forged.url("ep1", "job1")))


def test_odd_tokens_are_refused_without_error() -> None:
    """Empty, truncated and non-ASCII tokens are simply refused."""
    good = token_of(SIGNER.url("ep1", "job1"))
    for token in ("", good[:-1], good + "0", "é" * len(good)):
        assert not SIGNER.verify("ep1", "job1", token)


def test_derived_secret_is_stable_and_depends_on_the_key() -> None:
    """Every process with the same API key derives the same secret; another key gives another one."""
    assert derive_secret("key-a") == derive_secret("key-a")
    assert derive_secret("key-a") != derive_secret("key-b")
    assert b"key-a" not in derive_secret("key-a")


def test_a_non_http_base_url_is_refused() -> None:
    """RunPod can only call http(s) URLs, so another base is a configuration error."""
    with pytest.raises(ValueError, match="http"):
        WebhookSigner(b"secret", "bot.example.com")
