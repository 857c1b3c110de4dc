from decimal import Decimal

import pytest

from webapp.money import MoneyError, format_inr, parse_rupees, to_paise
from webapp.services.loans import normalise_phone, parse_date


def test_indian_grouping():
    assert format_inr(12_345_678) == "₹1,23,456.78"
    assert format_inr(10_000_000) == "₹1,00,000.00"
    assert format_inr(5) == "₹0.05"
    assert format_inr(0) == "₹0.00"
    assert format_inr(99_999) == "₹999.99"
    assert format_inr(1_00_000) == "₹1,000.00"
    assert format_inr(1_23_45_67_89_012) == "₹1,23,45,67,890.12"
    assert format_inr(-1_23_456_78) == "-₹1,23,456.78"
    assert format_inr(None) == "—"
    assert format_inr(Decimal("12345678")) == "₹1,23,456.78"  # a SUM of paise


@pytest.mark.parametrize("raw, paise", [("100000", 10_000_000), ("100000.50", 10_000_050), ("1,00,000.5", 10_000_050),
                                        ("₹ 99.99", 9_999), ("1.230", 123)])
def test_rupees_parse_exactly(raw, paise):
    assert to_paise(parse_rupees(raw)) == paise


@pytest.mark.parametrize("raw, problem", [("-1", "greater than zero"), ("0", "greater than zero"),
                                          ("1.234", "2 decimal places"), ("abc", "not a number"),
                                          ("NaN", "not a number"), ("1e30", "too large"), ("Infinity", "not a number"),
                                          ("9" * 40 + ".001", "too large")])
def test_bad_amounts_are_refused_with_a_reason(raw, problem):
    with pytest.raises(MoneyError, match=problem):
        parse_rupees(raw)


def test_float_is_never_money():
    with pytest.raises(MoneyError):
        parse_rupees(0.1)
    assert parse_rupees(Decimal("0.10")) == Decimal("0.10")


@pytest.mark.parametrize("raw", ["9876543210", "+91 98765 43210", "098765-43210", "919876543210"])
def test_phone_normalised(raw):
    assert normalise_phone(raw) == "9876543210"


@pytest.mark.parametrize("raw", ["12345", "5876543210", "98765432101", "abcdefghij", ""])
def test_bad_phone_refused(raw):
    with pytest.raises(ValueError):
        normalise_phone(raw)


@pytest.mark.parametrize("raw", ["2026-02-30", "05/01/2026", "20260105", "1899-01-01", ""])
def test_bad_dates_refused(raw):
    with pytest.raises(ValueError):
        parse_date(raw)
