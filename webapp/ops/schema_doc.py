"""docs/schema.md, generated from the SQLAlchemy models (`kisht docs schema`; a test fails when it is stale).

Tables, columns, types, nullability, keys, checks and indexes come from `webapp.models` (Base.metadata); the
table descriptions are the models' docstrings; column meanings come from docs/schema-meanings.tsv (hand
written, one `table.column<TAB>meaning` a line). Triggers live in the migrations: docs/schema-guards.md.
"""
from __future__ import annotations

import inspect as pyinspect
from pathlib import Path

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, UniqueConstraint
from sqlalchemy.dialects import postgresql

from webapp.config import ROOT

OUTPUT = ROOT / "docs" / "schema.md"
MEANINGS = ROOT / "docs" / "schema-meanings.tsv"

HEADER = """# Database schema

> **Generated** from `webapp/models/` by `kisht docs schema` — do not edit by hand. Column meanings come from
> `docs/schema-meanings.tsv`; the database guards (triggers) are described in [schema-guards.md](schema-guards.md).
> `tests/ops/test_schema_doc.py` fails when this page is out of date with the models.

Conventions:

* Money is integer **paise** in `BIGINT` columns whose names end in `_paise` (₹1 = 100 paise).
* Timestamps are `TIMESTAMP WITH TIME ZONE` on PostgreSQL, stored in UTC; SQLite stores UTC and the
  application reads it back as UTC (`webapp.db.UTCDateTime`). Dates (`DATE`) are IST business dates.
* Defaults are applied by the application (ORM defaults); the database has no server-side defaults.
* Names: `pk_<table>`, `uq_<table>_<columns>`, `ck_<table>_<name>`, `fk_<table>_<column>_<referred table>`,
  `ix_<table>_<columns>`. Every foreign key column is indexed; no foreign key cascades.
* Alembic keeps its own `alembic_version` table.
"""


def _meanings() -> dict[str, str]:
    result = {}
    for line in MEANINGS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, meaning = line.partition("\t")
            result[key.strip()] = meaning.strip()
    return result


def _type(column) -> str:
    try:
        return str(column.type.compile(dialect=postgresql.dialect())).lower()
    except Exception:
        return type(column.type).__name__.lower()


def _models_by_table() -> dict[str, type]:
    from webapp.db import Base

    return {mapper.class_.__table__.name: mapper.class_ for mapper in Base.registry.mappers
            if hasattr(mapper.class_, "__table__")}


def render() -> str:
    import webapp.models  # noqa: F401  (registers every table)
    from webapp.db import Base

    meanings = _meanings()
    models = _models_by_table()
    out = [HEADER]
    tables = sorted(Base.metadata.tables.values(), key=lambda t: t.name)
    out.append("Tables: " + ", ".join(f"[`{t.name}`](#{t.name})" for t in tables) + ".\n")
    for table in tables:
        out.append(f"## {table.name}\n")
        model = models.get(table.name)
        doc = pyinspect.cleandoc(model.__doc__) if model is not None and model.__doc__ else ""
        if doc and not doc.startswith(model.__name__ + "("):
            out.append(f"Model `{model.__module__}.{model.__name__}`: " + " ".join(doc.split()) + "\n")
        out.append("| column | type | null | key | meaning |\n|---|---|---|---|---|")
        for column in table.columns:
            keys = []
            if column.primary_key:
                keys.append("PK")
            for fk in column.foreign_keys:
                keys.append(f"FK → `{fk.target_fullname}`")
            if column.unique:
                keys.append("unique")
            meaning = meanings.get(f"{table.name}.{column.name}", "").replace("|", "\\|")
            out.append(f"| `{column.name}` | {_type(column)} | {'yes' if column.nullable and not column.primary_key else ''} "
                       f"| {', '.join(keys)} | {meaning} |")
        out.append("")
        checks = sorted((c for c in table.constraints if isinstance(c, CheckConstraint)), key=lambda c: str(c.name))
        uniques = sorted((c for c in table.constraints if isinstance(c, UniqueConstraint)), key=lambda c: str(c.name))
        fks = sorted((c for c in table.constraints if isinstance(c, ForeignKeyConstraint)), key=lambda c: str(c.name))
        if checks:
            out.append("Checks:\n")
            for check in checks:
                sql = " ".join(str(check.sqltext).split())
                out.append(f"* `{check.name}`: `{sql}`")
            out.append("")
        if uniques or fks:
            names = [f"`{c.name}` ({', '.join(col.name for col in c.columns)})" for c in uniques]
            names += [f"`{c.name}`" for c in fks]
            out.append("Constraints: " + ", ".join(names) + ".\n")
        indexes = sorted(table.indexes, key=lambda i: str(i.name))
        if indexes:
            out.append("Indexes:\n")
            for index in indexes:
                columns = ", ".join(getattr(e, "name", None) or str(e) for e in index.expressions)
                where = index.dialect_options["postgresql"].get("where")
                extra = (" unique" if index.unique else "") + (f" where `{' '.join(str(where).split())}`" if where is not None else "")
                out.append(f"* `{index.name}` ({columns}){extra}")
            out.append("")
        partition = table.dialect_options["postgresql"].get("partition_by")
        if partition:
            out.append(f"PostgreSQL: partitioned by `{partition}`.\n")
    out.append("## Triggers\n\nThe migrations install guards (triggers) on PostgreSQL and SQLite that refuse changes to audit rows, "
               "loan terms, schedules, payments, reversals, decided approvals and reconciled data: see "
               "[schema-guards.md](schema-guards.md).\n")
    return "\n".join(out)


def write(path: Path | None = None) -> bool:
    """Write the page; True when it changed."""
    path = path or OUTPUT
    text = render()
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True
