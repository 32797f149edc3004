"""Money as the server feature shows it: monthly amounts in EUR, without and with VAT."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from spbot.providers.cloud_server import Price


@dataclass(frozen=True)
class Cost:
    """A monthly amount in EUR; `gross` is None when only the net price is known."""

    net: Decimal
    gross: Decimal | None

    @classmethod
    def of(cls, price: Price | None) -> Cost | None:
        return None if price is None else cls(price.net, price.gross)

    def times(self, factor: int) -> Cost:
        return Cost(self.net * factor, None if self.gross is None else self.gross * factor)

    def text(self, signed: bool = False) -> str:
        gross = "excl. VAT" if self.gross is None else f"{euro(self.gross, signed)} incl. VAT"
        return f"{euro(self.net, signed)}/month ({gross})"


def euro(amount: Decimal, signed: bool = False) -> str:
    rounded = amount.quantize(Decimal("0.01"))
    sign = ("+" if rounded >= 0 else "−") if signed else ("−" if rounded < 0 else "")
    return f"{sign}€{abs(rounded)}"
