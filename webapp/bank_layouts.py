"""How each bank lays out its statement export: data, not code. A new bank is a new entry here.

The reader (`webapp/services/statements.py`) knows nothing about any bank; it follows one of these
entries. Settings are validated at start-up (`layout_problem`), so a typo stops the app with one clear
line instead of failing an import later. `config.BANK_LAYOUTS` holds the dict the app uses (tests and
deployments may add entries there).

An entry:

``label``               what finance sees in the import form
``formats``             ``["CSV"]``, ``["XLSX"]`` or both; the file's own bytes decide which it is
``encoding``            CSV text encoding (default ``utf-8-sig``); ``delimiter`` (default ``,``)
``sheet``               XLSX sheet name (default: the first sheet)
``header_search_rows``  how many rows from the top may hold preamble before the header row (default 30)
``columns``             role → the header text in the file (compared without case and extra spaces):
                        ``txn_date`` and ``narration`` always; either ``credit`` and ``debit`` or
                        ``amount`` with ``direction`` (plus ``direction_values``, e.g. ``{"CR": "CREDIT",
                        "DR": "DEBIT"}``); optional ``value_date``, ``reference``, ``balance``.
                        Every column named here must be in the file's header row.
``date_formats``        strptime formats tried in order; XLSX cells that are real dates need none
``reference_is_utr``    whether the reference column carries the UTR; when False, or when the column is
                        empty or zeros, the UTR is read from the narration
``newest_first``        the export lists the latest transaction first (affects the balance check only)
``preamble``            field → the label of a cell above the header whose value is the next non-empty cell
                        to its right: ``account_number``, ``period_from``, ``period_to``
``footer_markers``      a row whose first non-empty cell starts with one of these ends the table
``mode_keywords``       optional override of DEFAULT_MODE_KEYWORDS
"""
from __future__ import annotations

import re
from datetime import datetime

# How a narration says which rail the money came by; the first pattern that matches wins.
DEFAULT_MODE_KEYWORDS: list[tuple[str, str]] = [
    ("RTGS", r"\bRTGS\b"),
    ("NEFT", r"\bNEFT\b"),
    ("IMPS", r"\bIMPS\b"),
    ("UPI", r"\bUPI\b"),
    ("CASH", r"\bCASH\b|\bCSH DEP\b"),
    ("CHEQUE", r"\bCHQ\b|\bCHEQUE\b|\bCLG\b|\bCLEARING\b"),
]

DEFAULT_FOOTER_MARKERS = ["***", "STATEMENT SUMMARY", "OPENING BALANCE", "CLOSING BALANCE", "END OF STATEMENT"]

BANK_LAYOUTS: dict[str, dict] = {
    "HDFC": {
        "label": "HDFC Bank — account statement (CSV)",
        "formats": ["CSV"],
        "encoding": "utf-8-sig",
        "columns": {
            "txn_date": "Date",
            "narration": "Narration",
            "reference": "Chq./Ref.No.",
            "value_date": "Value Dt",
            "debit": "Withdrawal Amt.",
            "credit": "Deposit Amt.",
            "balance": "Closing Balance",
        },
        "date_formats": ["%d/%m/%y", "%d/%m/%Y"],
        # UPI references come zero-padded to 16 digits ("0000154335349840"); the reader keeps the last
        # 12 digits when everything before them is zeros. Cash and charges carry "000000000000000": no UTR.
        "reference_is_utr": True,
    },
    "SBI": {
        "label": "State Bank of India — account statement (Excel .xlsx)",
        "formats": ["XLSX"],
        "columns": {
            "txn_date": "Txn Date",
            "value_date": "Value Date",
            "narration": "Description",
            "reference": "Ref No./Cheque No.",
            "debit": "Debit",
            "credit": "Credit",
            "balance": "Balance",
        },
        "date_formats": ["%d %b %Y", "%d-%b-%Y", "%d/%m/%Y"],
        # This column says "TRANSFER FROM <account>"; the RTGS UTR is inside the description.
        "reference_is_utr": False,
        "preamble": {"account_number": "Account Number :", "period_from": "Statement From :", "period_to": "To :"},
    },
}

ROLES = ("txn_date", "value_date", "narration", "reference", "credit", "debit", "amount", "direction", "balance")
KNOWN_KEYS = {"label", "formats", "encoding", "delimiter", "sheet", "header_search_rows", "columns", "date_formats",
              "reference_is_utr", "newest_first", "preamble", "footer_markers", "mode_keywords", "direction_values"}
MODES = ("NEFT", "RTGS", "IMPS", "UPI", "CASH", "CHEQUE")


def entry_problem(where: str, key: str, layout: dict, known_keys: set[str]) -> str | None:
    """What every layout entry (bank statements, the Excel tracker) needs: a key, known settings, a label."""
    if not re.fullmatch(r"[A-Z0-9_]{2,16}", key):
        return f"{where}: the key must be 2–16 capital letters, digits or _"
    unknown = set(layout) - known_keys
    if unknown:
        return f"{where}: unknown setting(s) {', '.join(sorted(unknown))}"
    if not layout.get("label"):
        return f"{where}: needs a label"
    return None


def layout_problem(key: str, layout: dict) -> str | None:
    """Why a layout entry is unusable, or None."""
    where = f"bank layout {key!r}"
    problem = entry_problem(where, key, layout, KNOWN_KEYS)
    if problem:
        return problem
    formats = layout.get("formats") or []
    if not formats or any(f not in ("CSV", "XLSX") for f in formats):
        return f"{where}: formats must list CSV and/or XLSX"
    columns = layout.get("columns") or {}
    if set(columns) - set(ROLES):
        return f"{where}: unknown column role(s) {', '.join(sorted(set(columns) - set(ROLES)))}"
    if not all(isinstance(v, str) and v.strip() for v in columns.values()):
        return f"{where}: every column must be named by its header text"
    if not {"txn_date", "narration"} <= set(columns):
        return f"{where}: columns need txn_date and narration"
    split = {"credit", "debit"} <= set(columns)
    single = {"amount", "direction"} <= set(columns)
    if split == single:
        return f"{where}: columns need either credit and debit, or amount and direction"
    if single:
        values = layout.get("direction_values") or {}
        if not values or set(values.values()) - {"CREDIT", "DEBIT"}:
            return f"{where}: direction_values must map the file's markers to CREDIT or DEBIT"
    formats_ = layout.get("date_formats") or []
    if not formats_:
        return f"{where}: needs at least one date format"
    for pattern in formats_:
        try:
            datetime(2000, 1, 31).strftime(pattern)  # any fixed moment: only the pattern is checked
        except ValueError:
            return f"{where}: bad date format {pattern!r}"
    if set(layout.get("preamble") or {}) - {"account_number", "period_from", "period_to"}:
        return f"{where}: preamble may name account_number, period_from and period_to only"
    for mode, pattern in layout.get("mode_keywords") or []:
        if mode not in MODES:
            return f"{where}: mode_keywords: unknown mode {mode!r}"
        try:
            re.compile(pattern)
        except re.error as problem:
            return f"{where}: mode_keywords for {mode}: {problem}"
    rows = layout.get("header_search_rows", 30)
    if not isinstance(rows, int) or not 1 <= rows <= 200:
        return f"{where}: header_search_rows must be 1–200"
    return None


def layouts_problem(layouts: dict) -> str | None:
    if not layouts:
        return "BANK_LAYOUTS is empty"
    for key, layout in layouts.items():
        problem = layout_problem(key, layout)
        if problem:
            return problem
    return None
