"""A model's price in models.toml: per GPU-hour or per second, in its currency, checked at start-up."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from jobs.presets import ModelsFileError, load_catalog
from jobs.prices import Price, format_money

MODEL = '[[models]]\nname = "xl"\nendpoint_id = "e"\npreset = "sdxl"\n'


def catalog_of(tmp_path: Path, content: str) -> list[Price | None]:
    path = tmp_path / "models.toml"
    path.write_text(content)
    return [model.price for model in load_catalog(path, "ep").models]


def test_a_price_per_gpu_hour_is_kept_per_second(tmp_path: Path) -> None:
    """`price_per_gpu_hour = 1.8` is 0.0005 a second, in USD when nothing names a currency."""
    assert catalog_of(tmp_path, MODEL + "price_per_gpu_hour = 1.8\n") == [Price(Decimal("0.0005"), "USD")]


def test_a_price_per_second_in_the_models_own_currency(tmp_path: Path) -> None:
    """A model's own `currency` beats the file's."""
    content = 'currency = "GBP"\n' + MODEL + 'price_per_second = 0.00025\ncurrency = "EUR"\n'
    assert catalog_of(tmp_path, content) == [Price(Decimal("0.00025"), "EUR")]


def test_the_files_currency_applies_to_a_price_that_names_none(tmp_path: Path) -> None:
    """A top-level `currency` is the currency of every price without one of its own."""
    assert catalog_of(tmp_path, 'currency = "GBP"\n' + MODEL + "price_per_second = 0.001\n") == [
        Price(Decimal("0.001"), "GBP")
    ]


def test_a_model_without_a_price_has_none(tmp_path: Path) -> None:
    """No price: usage shows that model's GPU time in seconds only."""
    assert catalog_of(tmp_path, MODEL) == [None]


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("price_per_gpu_hour = 1.0\nprice_per_second = 0.001\n", "not both"),
        ("price_per_second = 0\n", "greater than 0"),
        ("price_per_gpu_hour = -2.0\n", "greater than 0"),
        ("price_per_gpu_hour = inf\n", "finite"),
        ('price_per_second = 0.001\ncurrency = "dollars"\n', "three-letter currency code"),
        ('currency = "EUR"\n', "currency applies only with a price"),
    ],
)
def test_a_wrong_price_stops_start_up_with_the_reason(tmp_path: Path, extra: str, problem: str) -> None:
    """Two prices, a price that is not positive or finite, an unknown currency or a currency without a price."""
    with pytest.raises(ModelsFileError, match=problem):
        catalog_of(tmp_path, MODEL + extra)


def test_a_wrong_currency_for_the_whole_file_stops_start_up(tmp_path: Path) -> None:
    """The file's own `currency` is checked the same way."""
    with pytest.raises(ModelsFileError, match="three-letter currency code"):
        catalog_of(tmp_path, 'currency = "usd"\n' + MODEL)


def test_a_jobs_cost_is_counted_in_millionths() -> None:
    """4.2 GPU-seconds at 1.8 an hour cost 0.0021: 2100 millionths, exactly."""
    assert Price.of(per_second=None, per_gpu_hour=1.8, currency="USD") == Price(Decimal("0.0005"), "USD")
    assert Price(Decimal("0.0005")).cost_micros(4200) == 2100


def test_money_reads_with_two_decimals_and_small_sums_with_four() -> None:
    """12 345.678 USD reads "12,345.68 USD"; 0.0021 USD reads "0.0021 USD", not "0.00 USD"."""
    assert str(format_money(12_345_678_000, "USD")) == "12,345.68 USD"
    assert str(format_money(2100, "USD")) == "0.0021 USD"
    assert str(format_money(0, "EUR")) == "0.00 EUR"
