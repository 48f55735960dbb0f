"""What a model's GPU time costs: the price a `[[models]]` entry gives, and money kept as whole micro-units.

A price is per GPU-second (RunPod bills Serverless by the second); `price_per_gpu_hour` is divided by 3600. Money is
added up as integers of a millionth of the currency (`Price.cost_micros`), so sums never drift the way floats do,
and a job of a few GPU-seconds at a few cents an hour still costs a countable amount.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from jobs.text import T, Text

# Used when neither the model nor models.toml names a currency.
DEFAULT_CURRENCY = "USD"
# An ISO 4217 code (USD, EUR, GBP…): three capital letters.
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")
MICROS_PER_UNIT = 1_000_000
SECONDS_PER_HOUR = 3600
MS_PER_S = 1000


def check_currency(code: str) -> str:
    """The code, or a `ValueError` that says what a currency looks like."""
    if not CURRENCY_PATTERN.fullmatch(code):
        raise ValueError(f"currency {code!r} is not a three-letter currency code in capitals, like USD or EUR")
    return code


@dataclass(frozen=True)
class Price:
    """What one GPU-second of a model costs, in `currency`."""

    per_second: Decimal
    currency: str = DEFAULT_CURRENCY

    @classmethod
    def of(cls, *, per_second: float | None, per_gpu_hour: float | None, currency: str) -> Price | None:
        """The price a models.toml entry gives (at most one of the two; None when it gives neither)."""
        if per_second is not None and per_gpu_hour is not None:
            raise ValueError("give price_per_gpu_hour or price_per_second, not both")
        if per_second is not None:
            return cls(Decimal(str(per_second)), check_currency(currency))
        if per_gpu_hour is not None:
            return cls(Decimal(str(per_gpu_hour)) / SECONDS_PER_HOUR, check_currency(currency))
        return None

    def cost_micros(self, gpu_ms: int) -> int:
        """What `gpu_ms` of GPU time costs, in millionths of the currency (rounded to the nearest)."""
        exact = self.per_second * gpu_ms * MICROS_PER_UNIT / MS_PER_S
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def format_money(micros: int, currency: str) -> Text:
    """An amount as a member reads it: "1.24 USD"; below one unit, four decimals ("0.0031 USD"), so a few
    seconds of GPU time do not read as nothing. The currency stays as the operator wrote it; the number is written
    the reader's way where the text is rendered ("1.234,50 USD" in German)."""
    amount = Decimal(micros) / MICROS_PER_UNIT
    if micros and abs(amount) < 1:
        return T("{amount:.4f} {currency}", amount=amount, currency=currency)
    return T("{amount:,.2f} {currency}", amount=amount, currency=currency)
