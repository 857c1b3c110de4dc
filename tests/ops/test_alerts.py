"""ops/alerts.yml loads in Prometheus's own checker and its rules fire (and stay quiet) as the tests expect."""
import shutil
import subprocess
from pathlib import Path

import pytest

OPS = Path(__file__).resolve().parents[2] / "ops"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: install Debian's prometheus package (.ci/run does)"
    return found


def test_alert_rules_pass_promtool_check(promtool):
    result = subprocess.run([promtool, "check", "rules", str(OPS / "alerts.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 12 rules found" in result.stdout


def test_alert_rules_pass_their_unit_tests(promtool):
    result = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=OPS, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_rule_file_is_caught(promtool, tmp_path):
    broken = tmp_path / "alerts.yml"
    broken.write_text((OPS / "alerts.yml").read_text().replace("> 50 * 3600", "> > 50"))
    result = subprocess.run([promtool, "check", "rules", str(broken)], capture_output=True, text=True)
    assert result.returncode != 0


def test_every_alert_names_a_metric_the_app_exports():
    """An alert on a metric nobody exports would never fire."""
    import re

    rules = (OPS / "alerts.yml").read_text()
    exported = set(re.findall(r'"(kisht_[a-z0-9_]+)"', (OPS.parent / "webapp/ops/metrics.py").read_text()))
    used = set(re.findall(r"\b(kisht_[a-z0-9_]+)", rules))
    histogram_parts = {f"kisht_http_request_duration_seconds_{s}" for s in ("bucket", "sum", "count")}
    missing = {name for name in used - histogram_parts if name not in exported}
    assert missing == set()
