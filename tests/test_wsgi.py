"""wsgi.py under real processes: a configuration error stops gunicorn and ``flask run`` at once,
with every problem on stderr and a non-zero exit; nothing restarts in a loop."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import base_env

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BOUND = 60  # seconds: generous on a busy machine; a restart loop never ends, so any bound tells them apart


def _bad_env(**overrides: str) -> dict[str, str]:
    env = base_env(SECRET_KEY="", **overrides)  # "every variable set except SECRET_KEY"
    return {"PATH": os.environ["PATH"], **env}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=BOUND)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"still running after {BOUND} s; stderr tail: {err[-2000:]}") from None
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.slow
def test_gunicorn_halts_on_a_configuration_error():
    result = _run([str(BIN / "gunicorn"), "--bind", "127.0.0.1:0", "--workers", "2", "wsgi:app"],
                  _bad_env(GITHUB_CLIENT_SECRET="", DATABASE_URL="postgres://u:hunter2@db.invalid:5432/x"))
    assert result.returncode != 0
    assert "App failed to load" in result.stderr
    assert "configuration error: SECRET_KEY: required outside demo/testing" in result.stderr
    assert "configuration error: GITHUB_CLIENT_SECRET: required when GITHUB_CLIENT_ID is set" in result.stderr
    # No restart loop: each worker that booted printed the problems once, and no worker was started again.
    assert result.stderr.count("configuration error: SECRET_KEY") <= 2
    assert "hunter2" not in result.stderr + result.stdout and "gh-client" not in result.stderr


def test_flask_run_stops_on_a_configuration_error():
    result = _run([str(BIN / "flask"), "--app", "wsgi", "run", "--no-reload", "--port", "0"], _bad_env())
    assert result.returncode == 4
    assert result.stderr.strip().splitlines() == ["configuration error: SECRET_KEY: required outside demo/testing"]
