"""Issue 15: docs/alerts.yml is a valid Prometheus rule file whose rules only use metrics the
node exports and each name the runbook's failure-matrix row."""
from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runtime.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "docs" / "alerts.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
DURATION = re.compile(r"^\d+[smhd]$")


def rules() -> list[dict]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    assert isinstance(document, dict) and list(document) == ["groups"], "top level is {groups: [...]}"
    out = []
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"], group
        out.extend(group["rules"])
    return out


def exported_series() -> set[str]:
    """Every series name /metrics can show (counters with _total, histograms with _bucket...)."""
    m = Metrics()
    m.record_order_outcome("filled")
    m.restarts.labels(node="x").inc()
    text = generate_latest(m.registry).decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    return names | {f.name for f in text_string_to_metric_families(text)}


def test_issue15_alert_rules_parse_as_prometheus_rules():
    seen = set()
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["alert"] not in seen, f"duplicate alert {rule['alert']}"
        seen.add(rule["alert"])
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert "for" not in rule or DURATION.match(rule["for"]), rule["for"]
        assert rule["labels"]["severity"] in ("page", "warning")
        assert rule["annotations"]["summary"]


def test_issue15_every_alert_names_a_runbook_row_that_exists():
    rows = set(re.findall(r"^\| (F\d+) \|", RUNBOOK.read_text(encoding="utf-8"), re.M))
    for rule in rules():
        named = re.findall(r"\bF\d+\b", rule["annotations"]["runbook"])
        assert named, f"{rule['alert']}: runbook annotation names no F-row"
        assert set(named) <= rows, f"{rule['alert']}: {named} not all in docs/runbook.md"


def test_issue15_alert_expressions_use_only_exported_metrics():
    series = exported_series()
    for rule in rules():
        for name in re.findall(r"\bwarden_[a-z_]+", rule["expr"]):
            assert name in series, f"{rule['alert']}: {name} is not exported by runtime/metrics.py"
