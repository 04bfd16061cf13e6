"""Issue 14: the README's chaos table is generated from var/chaos-report.json (`python -m chaos.report`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from chaos.report import README_BLOCK, main, markdown

ROOT = Path(__file__).resolve().parents[2]
ROWS = [{"scenario": "broker-timeout", "row": "F1", "passed": True, "detect_ms": 1001.4, "recover_ms": 7695.0,
         "duplicates": 0, "lost": 0},
        {"scenario": "sigterm", "row": "F26", "passed": False, "detect_ms": None, "recover_ms": 1268.2,
         "duplicates": 1, "lost": 0}]


def test_markdown_table_from_the_report_rows() -> None:
    table = markdown(ROWS, "2026-12-01")
    assert table.splitlines()[0] == "Latest full run (2-core machine, 2026-12-01), 1/2 passing:"
    assert "| broker-timeout | F1 | PASS | 1001 | 7695 | 0 | 0 |" in table
    assert "| sigterm | F26 | FAIL | - | 1268 | 1 | 0 |" in table


def test_update_readme_replaces_only_the_chaos_table(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    before = readme.read_text(encoding="utf-8")
    assert README_BLOCK.search(before), "the repo's README has the generated table's heading and rows"
    report = tmp_path / "chaos-report.json"
    report.write_text(json.dumps(ROWS), encoding="utf-8")
    assert main([str(report), "--update-readme", str(readme)]) == 0
    after = readme.read_text(encoding="utf-8")
    assert "| sigterm | F26 | FAIL | - | 1268 | 1 | 0 |" in after
    assert after.count("Latest full run (") == 1
    assert README_BLOCK.sub("", before) == README_BLOCK.sub("", after), "nothing else in the README changed"
