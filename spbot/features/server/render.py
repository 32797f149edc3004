"""Money as the server feature shows it: monthly amounts in EUR without and with VAT (Hetzner), or
in USD before tax (DigitalOcean, whose API gives no tax-inclusive price)."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from spbot.providers.cloud_server import Price

SYMBOLS = {"EUR": "€", "USD": "$"}


@dataclass(frozen=True)
class Cost:
    """A monthly amount; `gross` is None when only the amount before tax is known."""

    net: Decimal
    gross: Decimal | None
    currency: str = "EUR"

    @classmethod
    def of(cls, price: Price | None) -> Cost | None:
        return None if price is None else cls(price.net, price.gross, price.currency)

    def times(self, factor: int) -> Cost:
        return Cost(self.net * factor, None if self.gross is None else self.gross * factor,
                    self.currency)

    def text(self, signed: bool = False) -> str:
        if self.currency != "EUR":
            return f"{money(self.net, self.currency, signed)}/month (before tax)"
        gross = "excl. VAT" if self.gross is None else f"{euro(self.gross, signed)} incl. VAT"
        return f"{euro(self.net, signed)}/month ({gross})"


def money(amount: Decimal, currency: str = "EUR", signed: bool = False) -> str:
    rounded = amount.quantize(Decimal("0.01"))
    sign = ("+" if rounded >= 0 else "−") if signed else ("−" if rounded < 0 else "")
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{abs(rounded)}" if symbol else f"{sign}{abs(rounded)} {currency}"


def euro(amount: Decimal, signed: bool = False) -> str:
    return money(amount, "EUR", signed)
