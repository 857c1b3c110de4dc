"""docs/schema.md is generated from the models; this fails when someone changes a model and not the page."""
from click.testing import CliRunner

from webapp.cli import cli
from webapp.db import Base
from webapp.ops import schema_doc


def test_schema_page_is_up_to_date_with_the_models():
    assert schema_doc.OUTPUT.read_text(encoding="utf-8") == schema_doc.render(), \
        "docs/schema.md is stale: run `kisht docs schema` and commit the result"


def test_every_table_and_column_is_on_the_page():
    import webapp.models  # noqa: F401

    page = schema_doc.render()
    for table in Base.metadata.tables.values():
        assert f"\n## {table.name}\n" in page
        for column in table.columns:
            assert f"| `{column.name}` |" in page


def test_check_mode_reports_a_stale_page(tmp_path, monkeypatch):
    stale = tmp_path / "schema.md"
    stale.write_text(schema_doc.render().replace("## payments\n", "## payments (old)\n"))
    monkeypatch.setattr(schema_doc, "OUTPUT", stale)
    result = CliRunner().invoke(cli, ["docs", "schema", "--check"])
    assert result.exit_code == 1 and "out of date" in result.output
    assert CliRunner().invoke(cli, ["docs", "schema"]).exit_code == 0
    assert stale.read_text() == schema_doc.render()
    assert CliRunner().invoke(cli, ["docs", "schema", "--check"]).exit_code == 0
