"""deploy/systemd units: `systemd-analyze verify` accepts them (with this checkout's paths
substituted, since verify checks that the commands exist); without systemd, a parse check."""
from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("connector-*"))


def _localised(tmp_path: Path) -> list[Path]:
    out = []
    for unit in UNITS:
        text = unit.read_text().replace("/srv/connector/.venv/bin/", f"{ROOT}/.venv/bin/")
        text = text.replace("/etc/connector/connector.env", "/dev/null")
        target = tmp_path / unit.name
        target.write_text(text)
        out.append(target)
    return out


def test_units_exist_for_the_web_service_and_the_worker():
    names = {unit.name for unit in UNITS}
    assert {"connector-web.service", "connector-worker.service"} <= names
    web = (ROOT / "deploy" / "systemd" / "connector-web.service").read_text()
    worker = (ROOT / "deploy" / "systemd" / "connector-worker.service").read_text()
    assert "gunicorn --config /srv/connector/gunicorn.conf.py wsgi:app" in web
    assert "flask --app wsgi connector worker" in worker
    assert "PROMETHEUS_MULTIPROC_DIR=/run/connector/metrics" in web and "PROMETHEUS_MULTIPROC_DIR" in worker


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path):
    result = subprocess.run(["systemd-analyze", "verify", *map(str, _localised(tmp_path))],  # noqa: S603
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_units_parse(tmp_path):
    for unit in UNITS:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        parser.read_string(unit.read_text())
        assert "Unit" in parser, unit.name
        if unit.suffix == ".service":
            assert parser["Service"]["ExecStart"].startswith("/srv/connector/.venv/bin/"), unit.name
            assert parser["Service"]["User"] == "connector", unit.name
