"""Money is integer paise in storage and Decimal rupees in Python; never float."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

PAISE_PER_RUPEE = 100
# Far above any single loan an NBFC books; stops absurd inputs before they reach BIGINT limits.
MAX_RUPEES = Decimal("1000000000000")  # ₹1 lakh crore


class MoneyError(ValueError):
    pass


def parse_rupees(text: str | int | Decimal, *, allow_zero: bool = False) -> Decimal:
    """A rupee amount from user input: at most 2 decimals, positive, within MAX_RUPEES."""
    if isinstance(text, float):
        raise MoneyError("must be a decimal string, not a float")
    raw = str(text).strip().replace(",", "")
    if raw.startswith("₹"):
        raw = raw[1:].strip()
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise MoneyError("is not a number") from None
    if not amount.is_finite():
        raise MoneyError("is not a number")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise MoneyError("must be greater than zero")
    if amount > MAX_RUPEES:
        raise MoneyError("is too large")
    if amount != amount.quantize(Decimal("0.01")):
        raise MoneyError("has more than 2 decimal places")
    return amount.quantize(Decimal("0.01"))


def to_paise(rupees: Decimal) -> int:
    return int((rupees * PAISE_PER_RUPEE).to_integral_value(rounding=ROUND_HALF_UP))


def to_rupees(paise: int) -> Decimal:
    return (Decimal(paise) / PAISE_PER_RUPEE).quantize(Decimal("0.01"))


def as_str(paise: int) -> str:
    """The API's decimal string: '8791.59'."""
    return str(to_rupees(paise))


def format_inr(paise: int | None) -> str:
    """Indian grouping for display: ₹1,23,456.78 (thousands, then lakhs and crores in twos). Integer arithmetic:
    a list page formats a hundred amounts, and a locale library took 44 µs for each."""
    if paise is None:
        return "—"
    if not isinstance(paise, int):  # a SUM comes back as a Decimal
        paise = int(Decimal(paise).to_integral_value())
    rupees, rest = divmod(abs(paise), PAISE_PER_RUPEE)
    head, groups = str(rupees)[:-3], [str(rupees)[-3:]]
    while head:
        head, group = head[:-2], head[-2:]
        groups.insert(0, group)
    return f"{'-' if paise < 0 else ''}₹{','.join(groups)}.{rest:02d}"
