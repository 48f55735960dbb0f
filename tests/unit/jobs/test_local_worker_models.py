"""models.toml and the settings for RunPod's local worker server: one place per model, an http(s) URL, a stable key."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.presets import ModelsFileError, default_catalog, load_catalog
from runpod_bot.settings import ConfigError, load_settings

LOCAL = "http://127.0.0.1:8000"


def write_models(directory: Path, body: str) -> Path:
    path = directory / "models.toml"
    path.write_text(f'[[models]]\nname = "m"\npreset = "sdxl"\n{body}')
    return path


def test_a_model_may_name_a_local_worker_server_instead_of_an_endpoint(tmp_path: Path) -> None:
    """`local_worker_url` alone is a model; its key stands for the server and is no RunPod endpoint id."""
    catalog = load_catalog(write_models(tmp_path, f'local_worker_url = "{LOCAL}/"\n'), "")
    model = catalog.default
    assert model.local_worker_url == LOCAL
    assert model.endpoint_id == "local-127.0.0.1-8000"
    assert catalog.local_worker_urls == {"local-127.0.0.1-8000": LOCAL}
    assert catalog.runpod_endpoint_ids == []


@pytest.mark.parametrize(
    "body",
    [f'endpoint_id = "abc123"\nlocal_worker_url = "{LOCAL}"\n', ""],
    ids=["both", "neither"],
)
def test_a_model_needs_exactly_one_of_endpoint_id_and_local_worker_url(tmp_path: Path, body: str) -> None:
    """Both or neither of `endpoint_id` and `local_worker_url` is refused, naming the two."""
    with pytest.raises(ModelsFileError, match=r"give either endpoint_id .* or local_worker_url"):
        load_catalog(write_models(tmp_path, body), "")


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "ftp://127.0.0.1:8000", "http://", "http://127.0.0.1:99999"])
def test_local_worker_url_must_be_an_http_url_of_a_server(tmp_path: Path, url: str) -> None:
    """A `local_worker_url` that is not http(s) with a host (and a valid port) is refused with an example."""
    with pytest.raises(ModelsFileError, match="local_worker_url"):
        load_catalog(write_models(tmp_path, f'local_worker_url = "{url}"\n'), "")


def test_an_endpoint_id_cannot_take_a_local_worker_key(tmp_path: Path) -> None:
    """An `endpoint_id` shaped like a local worker's key is refused, so the two never share Redis keys."""
    with pytest.raises(ModelsFileError, match="keeps for the keys of local worker servers"):
        load_catalog(write_models(tmp_path, 'endpoint_id = "local-127.0.0.1-8000"\n'), "")


def test_runpod_local_worker_url_serves_the_default_model_without_a_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """RUNPOD_LOCAL_WORKER_URL replaces RUNPOD_ENDPOINT_ID, and then RUNPOD_API_KEY is not required."""
    monkeypatch.chdir(tmp_path)
    for name in ("RUNPOD_API_KEY", "RUNPOD_ENDPOINT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DISCORD_TOKEN", "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789abc")
    monkeypatch.setenv("RUNPOD_LOCAL_WORKER_URL", LOCAL)
    settings = load_settings()
    assert settings.runpod_local_worker_url == LOCAL
    assert default_catalog(None, local_worker_url=LOCAL).default.local_worker_url == LOCAL


def test_runpod_local_worker_url_and_endpoint_id_together_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both RUNPOD_ENDPOINT_ID and RUNPOD_LOCAL_WORKER_URL: refused, naming both."""
    with pytest.raises(ConfigError, match="RUNPOD_ENDPOINT_ID and RUNPOD_LOCAL_WORKER_URL are both set"):
        load_settings(runpod_endpoint_id="abc123", runpod_local_worker_url=LOCAL)


def test_runpod_local_worker_url_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """A RUNPOD_LOCAL_WORKER_URL that is no http(s) URL is refused, naming the variable."""
    monkeypatch.delenv("RUNPOD_ENDPOINT_ID", raising=False)
    with pytest.raises(ConfigError, match=r"RUNPOD_LOCAL_WORKER_URL: .*is not the http"):
        load_settings((), runpod_local_worker_url="localhost:8000")
