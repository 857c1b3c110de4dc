"""Reading a bank statement file by its bank's layout (webapp/bank_layouts.py). Pure: no database.

All or nothing: every problem is collected and reported as "row N, <column as the file names it>", and
nothing comes back unless the whole file reads. Row numbers are the file's own (what a spreadsheet
shows), preamble included.

UTRs are normalised the way payments store them (`payments.normalise_reference`: trimmed, upper-case)
and must have the shape `payments.REFERENCE_RULES` gives the line's mode (NEFT 16 and RTGS 22 letters or
digits, IMPS and UPI 12 digits). A numeric reference longer than its rule whose extra leading characters
are all zeros is cut to the rule's length: HDFC writes UPI reference 154335349840 as "0000154335349840".
A reference of zeros is no reference. When the layout's reference column does not carry UTRs, or the
value there does not have the right shape, the UTR is taken from the narration: the one token of the
right shape (with at least one digit). Two different candidates → no UTR, and a warning.

A running balance that does not follow (previous balance + credit − debit) is a warning on the
statement, never a refusal.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from webapp import money
from webapp.bank_layouts import DEFAULT_FOOTER_MARKERS, DEFAULT_MODE_KEYWORDS
from webapp.errors import ValidationError
from webapp.services.payments import REFERENCE_RULES, normalise_reference

MAX_REPORTED_ERRORS = 50
ELECTRONIC = ("NEFT", "RTGS", "IMPS", "UPI")
# Which reference shapes each line mode may carry, in the order tried.
UTR_RULES_BY_MODE = {"NEFT": ("NEFT",), "RTGS": ("RTGS",), "IMPS": ("IMPS",), "UPI": ("UPI",),
                     "OTHER": ("RTGS", "NEFT", "IMPS"), "CASH": (), "CHEQUE": ()}
UTR_LENGTHS = {"NEFT": 16, "RTGS": 22, "IMPS": 12, "UPI": 12}
XLSX_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary .xls
HUMAN_DATE = (("%d", "dd"), ("%m", "mm"), ("%y", "yy"), ("%Y", "yyyy"), ("%b", "Mon"), ("%B", "Month"))


@dataclass(frozen=True)
class ParsedLine:
    row_number: int
    txn_date: date
    value_date: date
    narration: str
    bank_reference: str | None
    utr: str | None
    utr_source: str | None
    mode: str
    direction: str
    amount_paise: int
    balance_paise: int | None

    @property
    def credit_paise(self) -> int:
        return self.amount_paise if self.direction == "CREDIT" else 0

    @property
    def debit_paise(self) -> int:
        return self.amount_paise if self.direction == "DEBIT" else 0


@dataclass
class ParsedStatement:
    bank: str
    file_format: str
    account_number: str | None
    period_from: date
    period_to: date
    lines: list[ParsedLine]  # oldest first, whatever order the file has
    warnings: list[str] = field(default_factory=list)

    @property
    def opening_balance_paise(self) -> int | None:
        first = self.lines[0]
        if first.balance_paise is None:
            return None
        return first.balance_paise - first.credit_paise + first.debit_paise

    @property
    def closing_balance_paise(self) -> int | None:
        return self.lines[-1].balance_paise


def detect_format(data: bytes) -> str:
    if data.startswith(XLSX_MAGIC):
        return "XLSX"
    if data.startswith(OLE_MAGIC):
        return "XLS"
    return "CSV"


def human_format(pattern: str) -> str:
    for code, words in HUMAN_DATE:
        pattern = pattern.replace(code, words)
    return pattern


def _key(text) -> str:
    return re.sub(r"\s+", " ", str(text)).strip().casefold() if text is not None else ""


def _text(cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, datetime):
        return cell.date().isoformat()
    return str(cell).strip()


# ---------------------------------------------------------------- rows from the file

def _csv_rows(data: bytes, layout: dict, max_rows: int) -> list[list]:
    encoding = layout.get("encoding", "utf-8-sig")
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise ValidationError("The file could not be read.",
                              fields={"file": f"is not {encoding} text; export the statement as CSV again"}) from None
    if "\x00" in text:
        raise ValidationError("The file could not be read.", fields={"file": "is not a CSV text file"})
    rows = []
    for row in csv.reader(io.StringIO(text, newline=""), delimiter=layout.get("delimiter", ",")):
        rows.append(row)
        if len(rows) > max_rows:
            break
    return rows


def _xlsx_rows(data: bytes, layout: dict, max_rows: int) -> list[list]:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError):
        raise ValidationError("The file could not be read.",
                              fields={"file": "is not a readable Excel .xlsx workbook"}) from None
    try:
        sheet_name = layout.get("sheet")
        if sheet_name and sheet_name not in workbook.sheetnames:
            raise ValidationError("The file could not be read.",
                                  fields={"file": f"has no sheet named {sheet_name!r}"})
        sheet = workbook[sheet_name] if sheet_name else workbook.worksheets[0]
        rows = []
        for row in sheet.iter_rows(values_only=True):
            rows.append(list(row))
            if len(rows) > max_rows:
                break
        return rows
    finally:
        workbook.close()


# ---------------------------------------------------------------- cells

def parse_date(cell, formats) -> date:
    if isinstance(cell, datetime):
        return cell.date()
    if isinstance(cell, date):
        return cell
    raw = _text(cell)
    if not raw:
        raise ValueError("is empty")
    for pattern in formats:
        try:
            return datetime.strptime(raw, pattern).date()
        except ValueError:
            continue
    expected = " or ".join(human_format(p) for p in formats)
    raise ValueError(f"{raw!r} is not a date as {expected}")


def parse_amount(cell, *, signed: bool = False) -> int:
    """Paise from a cell; empty is 0. Text like "1,23,456.78", "₹ 500" or (balances) "1,000.00 Cr" is read."""
    if cell is None:
        return 0
    if isinstance(cell, bool):
        raise ValueError(f"{cell!r} is not an amount")
    if isinstance(cell, (int, float, Decimal)):
        value = Decimal(repr(cell)) if isinstance(cell, float) else Decimal(cell)
        raw = repr(cell)
    else:
        raw = str(cell).strip()
        if not raw:
            return 0
        text = raw.upper().replace(",", "").replace("₹", "").replace("INR", "").strip()
        sign = 1
        if signed and text.endswith(("CR", "DR")):
            sign = -1 if text.endswith("DR") else 1
            text = text[:-2].strip()
        if text.startswith("(") and text.endswith(")") and signed:
            sign, text = -1, text[1:-1].strip()
        try:
            value = Decimal(text) * sign
        except InvalidOperation:
            raise ValueError(f"{raw!r} is not an amount") from None
    if not value.is_finite():
        raise ValueError(f"{raw!r} is not an amount")
    rounded = value.quantize(Decimal("0.01"))
    if abs(value - rounded) > Decimal("0.000001"):
        raise ValueError(f"{raw!r} has more than 2 decimal places")
    if rounded < 0 and not signed:
        raise ValueError(f"{raw!r} is negative")
    if abs(rounded) > money.MAX_RUPEES:
        raise ValueError(f"{raw!r} is too large")
    return money.to_paise(rounded)


# ---------------------------------------------------------------- mode and UTR

def detect_mode(narration: str, keywords=None) -> str:
    upper = narration.upper()
    for mode, pattern in keywords or DEFAULT_MODE_KEYWORDS:
        if re.search(pattern, upper):
            return mode
    return "OTHER"


def normalise_utr(raw, mode: str) -> str | None:
    """A UTR in the shape payments store for `mode`, or None. Zero padding in front of a numeric reference
    is removed down to the rule's length (only zeros are ever removed)."""
    candidate = re.sub(r"\s+", "", normalise_reference(raw))
    if not candidate or set(candidate) == {"0"}:
        return None
    for rule in UTR_RULES_BY_MODE.get(mode, ()):
        value = candidate
        length = UTR_LENGTHS[rule]
        if value.isdigit() and len(value) > length and set(value[:-length]) == {"0"}:
            value = value[-length:]
        pattern, _ = REFERENCE_RULES[rule]
        if pattern.match(value) and any(ch.isdigit() for ch in value):
            return value
    return None


def utr_from_narration(narration: str, mode: str) -> list[str]:
    """Every distinct token of the narration that has a UTR's shape for `mode`, in order."""
    found: list[str] = []
    for token in re.split(r"[^A-Z0-9]+", narration.upper()):
        value = normalise_utr(token, mode)
        if value and value not in found:
            found.append(value)
    return found


# ---------------------------------------------------------------- the reader

def read_statement(data: bytes, bank: str, layout: dict, *, max_lines: int) -> ParsedStatement:
    if not data:
        raise ValidationError("The file is empty.", fields={"file": "is empty"})
    file_format = detect_format(data)
    if file_format == "XLS":
        raise ValidationError("The file could not be read.", fields={
            "file": "is an old binary .xls workbook; save it as .xlsx (or CSV) and import that"})
    allowed = layout["formats"]
    if file_format not in allowed:
        kind = "an Excel workbook" if file_format == "XLSX" else "a text (CSV) file"
        raise ValidationError("The file does not fit this bank's layout.", fields={
            "file": f"is {kind}; {bank} statements are imported as {' or '.join(allowed)}"})
    search = layout.get("header_search_rows", 30)
    reader = _xlsx_rows if file_format == "XLSX" else _csv_rows
    rows = reader(data, layout, search + max_lines + 1)
    columns: dict[str, str] = layout["columns"]
    header_at, positions = _find_header(rows, columns, search)
    preamble = _read_preamble(rows[:header_at], layout)
    lines, errors, warnings = _read_lines(rows, header_at, positions, layout, max_lines)
    if errors:
        shown = dict(list(errors.items())[:MAX_REPORTED_ERRORS])
        if len(errors) > MAX_REPORTED_ERRORS:
            shown["more"] = f"{len(errors) - MAX_REPORTED_ERRORS} more problem(s) not listed"
        raise ValidationError(f"Nothing was imported: {len(errors)} problem(s) in the file.", fields=shown)
    if not lines:
        raise ValidationError("The file has no transactions.",
                              fields={"file": f"no transaction rows below the header (row {header_at + 1})"})
    if layout.get("newest_first"):
        lines.reverse()
    warnings += _balance_gaps(lines)
    dates = [d for line in lines for d in (line.txn_date, line.value_date)]
    period_from = preamble.get("period_from") or min(dates)
    period_to = preamble.get("period_to") or max(dates)
    if period_from > period_to:
        raise ValidationError("The statement period is not valid.",
                              fields={"preamble": f"the period starts {period_from} after it ends {period_to}"})
    outside = [line.row_number for line in lines if not period_from <= line.value_date <= period_to]
    if outside:
        warnings.append(f"{len(outside)} line(s) fall outside the statement period {period_from:%d %b %Y} – "
                        f"{period_to:%d %b %Y} (rows {', '.join(map(str, outside[:10]))})")
    return ParsedStatement(bank, file_format, preamble.get("account_number"), period_from, period_to, lines, warnings)


def _find_header(rows: list[list], columns: dict[str, str], search: int) -> tuple[int, dict[str, int]]:
    wanted = {role: _key(name) for role, name in columns.items()}
    best_row, best_found = None, {}
    for index, row in enumerate(rows[:search]):
        keys = [_key(cell) for cell in row]
        found = {role: keys.index(name) for role, name in wanted.items() if name in keys}
        if len(found) == len(wanted):
            return index, found
        if len(found) > len(best_found):
            best_row, best_found = index, found
    if best_row is None:
        expected = ", ".join(repr(name) for name in columns.values())
        raise ValidationError("The file is missing required columns.", fields={
            "header": f"no header row in the first {search} rows; expected columns {expected}"})
    missing = ", ".join(repr(columns[role]) for role in columns if role not in best_found)
    raise ValidationError("The file is missing required columns.", fields={
        f"row {best_row + 1}": f"the header row lacks column(s) {missing}"})


def _read_preamble(rows: list[list], layout: dict) -> dict:
    labels = {_key(label): name for name, label in (layout.get("preamble") or {}).items()}
    found: dict = {}
    for row in rows:
        cells = list(row)
        for index, cell in enumerate(cells):
            name = labels.get(_key(cell))
            if not name or name in found:
                continue
            value = next((c for c in cells[index + 1:] if _text(c)), None)
            if value is None:
                continue
            if name == "account_number":
                found[name] = _text(value)[:34]
            else:
                try:
                    found[name] = parse_date(value, layout["date_formats"])
                except ValueError as problem:
                    raise ValidationError("The statement preamble is not valid.",
                                          fields={f"preamble, {_text(cell)}": str(problem)}) from None
    return found


def _read_lines(rows, header_at, positions, layout, max_lines):
    columns: dict[str, str] = layout["columns"]
    formats = layout["date_formats"]
    markers = [m.upper() for m in layout.get("footer_markers", DEFAULT_FOOTER_MARKERS)]
    keywords = layout.get("mode_keywords")
    lines: list[ParsedLine] = []
    errors: dict[str, str] = {}
    warnings: list[str] = []
    for index in range(header_at + 1, len(rows)):
        row_number = index + 1
        row = list(rows[index])
        texts = [_text(c) for c in row]
        if not any(texts):
            continue
        first = next(t for t in texts if t).upper()
        if any(first.startswith(m) for m in markers):
            break
        if len(lines) >= max_lines:
            raise ValidationError(f"The file has more than {max_lines} transactions; split it.",
                                  fields={"file": "too many rows"})

        def cell(role):
            position = positions.get(role)
            return row[position] if position is not None and position < len(row) else None

        def problem(role, message):
            errors[f"row {row_number}, {columns[role]}"] = message

        parsed = {}
        for role in ("txn_date", "value_date"):
            if role in positions:
                try:
                    parsed[role] = parse_date(cell(role), formats) if (role == "txn_date" or _text(cell(role))) else None
                except ValueError as bad:
                    problem(role, str(bad))
        amounts = {}
        for role in ("credit", "debit", "amount"):
            if role in positions:
                try:
                    amounts[role] = parse_amount(cell(role))
                except ValueError as bad:
                    problem(role, str(bad))
        balance = None
        if "balance" in positions:
            try:
                balance = parse_amount(cell("balance"), signed=True) if _text(cell("balance")) else None
            except ValueError as bad:
                problem("balance", str(bad))
        direction = amount = None
        if "amount" in positions:
            marker = _text(cell("direction")).upper()
            direction = {k.upper(): v for k, v in layout["direction_values"].items()}.get(marker)
            if direction is None:
                problem("direction", f"{marker!r} is not one of {', '.join(layout['direction_values'])}")
            amount = amounts.get("amount")
            if amount == 0:
                problem("amount", "is empty or zero")
        elif "credit" in amounts and "debit" in amounts:
            credit, debit = amounts["credit"], amounts["debit"]
            if credit and debit:
                errors[f"row {row_number}"] = (f"has both a {columns['debit']} and a {columns['credit']} amount; "
                                               "a line is one or the other")
            elif not credit and not debit:
                errors[f"row {row_number}"] = f"has neither a {columns['debit']} nor a {columns['credit']} amount"
            else:
                direction, amount = ("CREDIT", credit) if credit else ("DEBIT", debit)
        if any(key.startswith(f"row {row_number}") for key in errors):
            continue
        narration = _text(cell("narration"))
        reference = _text(cell("reference")) or None if "reference" in positions else None
        mode = detect_mode(narration, keywords)
        utr = source = None
        if direction == "CREDIT":
            if reference and layout.get("reference_is_utr", True):
                utr = normalise_utr(reference, mode)
                source = "REFERENCE" if utr else None
            if utr is None:
                candidates = utr_from_narration(narration, mode)
                if len(candidates) == 1:
                    utr, source = candidates[0], "NARRATION"
                elif len(candidates) > 1:
                    warnings.append(f"row {row_number}: several possible UTRs in the narration "
                                    f"({', '.join(candidates)}); none taken, match it by hand")
        txn_date = parsed["txn_date"]
        lines.append(ParsedLine(row_number, txn_date, parsed.get("value_date") or txn_date, narration[:2000],
                                (reference or None) and reference[:64], utr, source, mode, direction, amount,
                                balance))
    return lines, errors, warnings


def _balance_gaps(lines: list[ParsedLine]) -> list[str]:
    gaps = []
    for previous, line in zip(lines, lines[1:]):
        if previous.balance_paise is None or line.balance_paise is None:
            continue
        expected = previous.balance_paise + line.credit_paise - line.debit_paise
        if expected != line.balance_paise:
            gaps.append(
                f"row {line.row_number}: the balance {money.format_inr(line.balance_paise)} does not follow from "
                f"row {previous.row_number} ({money.format_inr(previous.balance_paise)} + "
                f"{money.format_inr(line.credit_paise)} − {money.format_inr(line.debit_paise)} = "
                f"{money.format_inr(expected)}): a gap of {money.format_inr(line.balance_paise - expected)}")
    return gaps
