"""`sync = true` in models.toml: the model is sent with /runsync, waiting `sync_wait_s` (RunPod's 1-300 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.presets import DEFAULT_SYNC_WAIT_S, ModelsFileError, load_catalog

FAST_MODEL = '[[models]]\nname = "fast"\nendpoint_id = "ep"\npreset = "sdxl-turbo"\n'


def catalog_of(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(FAST_MODEL + extra)
    return path


def test_sync_model_waits_the_default_when_no_wait_is_given(tmp_path: Path) -> None:
    """`sync = true` alone waits the documented default for the result."""
    loaded = load_catalog(catalog_of(tmp_path, "sync = true\n"), "unused")
    assert loaded.get("fast").sync_wait_ms == DEFAULT_SYNC_WAIT_S * 1000


def test_sync_model_waits_its_own_sync_wait(tmp_path: Path) -> None:
    """`sync_wait_s` sets how long RunPod is asked to hold the reply."""
    loaded = load_catalog(catalog_of(tmp_path, "sync = true\nsync_wait_s = 2.5\n"), "unused")
    assert loaded.get("fast").sync_wait_ms == 2500


def test_model_without_sync_is_sent_with_run(tmp_path: Path) -> None:
    """A model that does not say `sync = true` has no sync wait: it goes through /run."""
    loaded = load_catalog(catalog_of(tmp_path, ""), "unused")
    assert loaded.get("fast").sync_wait_ms is None


@pytest.mark.parametrize("wait", ["0.5", "301", "0"])
def test_sync_wait_outside_runpods_range_is_refused_with_the_range(tmp_path: Path, wait: str) -> None:
    """A wait RunPod would refuse stops start-up, naming the field, the model and RunPod's 1-300 s."""
    path = catalog_of(tmp_path, f"sync = true\nsync_wait_s = {wait}\n")
    with pytest.raises(ModelsFileError, match=r"sync_wait_s.*between 1 and 300 seconds"):
        load_catalog(path, "unused")


def test_sync_wait_without_sync_is_refused(tmp_path: Path) -> None:
    """A wait on a model that is not `sync` would do nothing: it is refused, saying what to add."""
    path = catalog_of(tmp_path, "sync_wait_s = 5\n")
    with pytest.raises(ModelsFileError, match=r"sync_wait_s.*only with sync = true"):
        load_catalog(path, "unused")
