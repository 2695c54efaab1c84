"""scripts/test (and so CI's .ci/run) lints the tree before running the suite, and the tree is clean."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_reports_nothing_on_the_tree():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]


def test_scripts_test_runs_ruff_before_pytest():
    lines = [line.strip() for line in (ROOT / "scripts" / "test").read_text().splitlines()]
    commands = [line for line in lines if line.startswith(".venv/bin/") or line.startswith("exec ")]
    lint = next(i for i, line in enumerate(commands) if "ruff check ." in line)
    tests = next(i for i, line in enumerate(commands) if "pytest" in line)
    assert lint < tests
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_bench_smoke_is_marked_slow_and_the_marker_is_registered():
    # scripts/test and .ci/run pass no -m filter, so CI runs it; -m "not slow" deselects it.
    import tomllib

    from tests.bench.test_smoke import test_bench_smoke_produces_figures

    assert "slow" in {mark.name for mark in test_bench_smoke_produces_figures.pytestmark}
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert any(marker.startswith("slow:") for marker in markers)
    assert "slow" not in (ROOT / ".ci" / "run").read_text() + (ROOT / "scripts" / "test").read_text()


def test_auth0_stand_in_key_is_generated_once(auth0):
    from tests.conftest import Auth0StandIn

    assert Auth0StandIn().key is auth0.key
