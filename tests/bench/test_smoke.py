"""The benchmark harness in smoke mode (tiny counts, SQLite): it runs and produces figures.

Not a performance gate: only that every figure is a number and that single-flight holds."""
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_smoke_produces_figures(tmp_path):
    out, figures_json = tmp_path / "RESULTS.md", tmp_path / "results.json"
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(out), "--json", str(figures_json)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(figures_json.read_text())
    assert data["failures"] == []
    figures = data["figures"]
    sections = {f["section"] for f in figures}
    assert {"1 token (HTTP)", "1 token (in-process)", "2 connect start", "3 single-flight", "4 memory",
            "7 callback"} <= sections
    stored = [f for f in figures if f["name"].startswith("connections stored")]
    assert stored and all(f["met"] is True and f["value"] > 0 for f in stored)  # every callback connected
    for figure in figures:
        assert isinstance(figure["value"], (int, float)) and math.isfinite(figure["value"]), figure
        assert figure["value"] >= 0, figure
        if figure["baseline"] is not None:
            assert math.isfinite(figure["baseline"]), figure
    throughput = [f for f in figures if f["unit"] in ("req/s", "calls/s")]
    assert throughput and all(f["value"] > 0 and f["baseline"] > 0 for f in throughput)
    refreshes = [f for f in figures if f["name"].startswith("refresh calls")]
    assert refreshes and all(f["value"] == 1 and f["met"] is True for f in refreshes)
    report = out.read_text()
    assert "## Summary" in report and "## Machine" in report and "bench/run --smoke" in report
    print(f"smoke run took {elapsed:.1f} s")
