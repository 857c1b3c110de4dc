"""How the Excel collections tracker is laid out: data, not code (like webapp/bank_layouts.py).

The reader (`webapp/services/shadow.py`) follows one of these entries. `config.TRACKER_LAYOUTS` holds the
dict the app uses; a deployment may add entries there. Checked at start-up (`layout_problem`).

An entry:

``label``               what finance sees in the import form
``sheet_titles``        strptime patterns for the sheet of a business date (one sheet per day), e.g.
                        ``"Tracker %d-%b-%Y"``; when none matches and the workbook has one sheet, that one
``header_search_rows``  how many rows from the top may come before the header row (default 10)
``columns``             role → header text in the file (compared without case and extra spaces):
                        ``loan_number``, ``outstanding`` (principal outstanding, rupees), ``dpd``, ``bucket``,
                        ``collection`` (collected on the day, rupees) are required; ``customer``, ``branch``,
                        ``collector``, ``emi`` are shown in the template only
``buckets``             the tracker's bucket label → the system bucket labels (config BUCKETS) it covers;
                        comparisons count loans in the tracker's labels, mapping the system's bucket
``bucket_aliases``      other spellings the team writes → the label above (compared without case)
"""
from __future__ import annotations

from datetime import datetime

from webapp.bank_layouts import entry_problem

TRACKER_LAYOUTS: dict[str, dict] = {
    "EXCEL_V1": {
        "label": "Collections tracker (Excel, one sheet per day)",
        "sheet_titles": ["Tracker %d-%b-%Y", "Tracker %d-%m-%Y", "%d-%b-%Y", "%Y-%m-%d"],
        "header_search_rows": 10,
        "columns": {
            "loan_number": "Loan No",
            "customer": "Customer Name",
            "branch": "Branch",
            "collector": "Collector",
            "emi": "EMI",
            "outstanding": "POS (Principal O/S)",
            "dpd": "DPD",
            "bucket": "Bucket",
            "collection": "Collection Today",
        },
        "buckets": {"Current": ["0"], "1-30": ["1-30"], "31-60": ["31-60"], "61-90": ["61-90"],
                    "NPA": ["91-180", "181+"]},
        "bucket_aliases": {"0": "Current", "Regular": "Current", "91+": "NPA", "90+": "NPA"},
    },
}

REQUIRED = ("loan_number", "outstanding", "dpd", "bucket", "collection")
OPTIONAL = ("customer", "branch", "collector", "emi")
KNOWN_KEYS = {"label", "sheet_titles", "header_search_rows", "columns", "buckets", "bucket_aliases"}


def layout_problem(key: str, layout: dict, system_buckets: list[str]) -> str | None:
    where = f"tracker layout {key!r}"
    problem = entry_problem(where, key, layout, KNOWN_KEYS)
    if problem:
        return problem
    columns = layout.get("columns") or {}
    if set(columns) - set(REQUIRED) - set(OPTIONAL):
        return f"{where}: unknown column role(s) {', '.join(sorted(set(columns) - set(REQUIRED) - set(OPTIONAL)))}"
    missing = [r for r in REQUIRED if not str(columns.get(r) or "").strip()]
    if missing:
        return f"{where}: columns need {', '.join(missing)}"
    for pattern in layout.get("sheet_titles") or []:
        try:
            datetime(2000, 1, 31).strftime(pattern)
        except ValueError:
            return f"{where}: bad sheet title pattern {pattern!r}"
    buckets = layout.get("buckets") or {}
    covered = [b for labels in buckets.values() for b in labels]
    if sorted(covered) != sorted(system_buckets):
        return (f"{where}: buckets must cover each system bucket ({', '.join(system_buckets)}) exactly once; "
                f"they cover {', '.join(covered) or 'none'}")
    for alias, target in (layout.get("bucket_aliases") or {}).items():
        if target not in buckets:
            return f"{where}: bucket alias {alias!r} points to unknown bucket {target!r}"
    rows = layout.get("header_search_rows", 10)
    if not isinstance(rows, int) or not 1 <= rows <= 100:
        return f"{where}: header_search_rows must be 1–100"
    return None
