"""`runpod-bot imagine` on a model with `sync = true`: the images come with the /runsync reply."""

from __future__ import annotations

from pathlib import Path

from runpod_emulator import Emulator
from tests.integration.test_cli_jobs import emulator_env, runpod_bot, workdir

__all__ = ["workdir"]


async def test_imagine_of_a_sync_model_saves_the_reply_without_polling(workdir: Path, emulator: Emulator) -> None:
    """A fast model's job is sent with one /runsync and saved from its reply: no /run and no /status call."""
    models = workdir / "models.toml"
    models.write_text(
        f'[[models]]\nname = "fast"\nendpoint_id = "{emulator.endpoint_id}"\npreset = "sdxl-turbo"\nsync = true\n'
    )
    result = await runpod_bot(
        workdir, "imagine", "a fox", "--out", "out", **emulator_env(emulator, MODELS_FILE=str(models))
    )
    assert result.returncode == 0, result.stderr
    assert "done; saved" in result.stdout
    assert list((workdir / "out").glob("*.png"))
    counters = emulator.counters
    assert (counters.request_count("runsync"), counters.request_count("run")) == (1, 0)
    assert counters.request_count("status") == 0
