"""scripts/demo as a newcomer runs it: "Demo ready" only once the server answers, a busy port is a clear error."""
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
BOUND = 120  # seconds: pip's "already satisfied" check and the app's start-up on a busy machine


def _env(port: int, tmp_path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PORT": str(port),
            "VENV": str(Path(sys.executable).parent.parent), "DATABASE_URL": f"sqlite:///{tmp_path}/demo.db"}


def test_busy_port_is_a_clear_error_and_nothing_claims_to_be_ready(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = subprocess.run([str(ROOT / "scripts" / "demo")], cwd=ROOT, env=_env(port, tmp_path),
                                capture_output=True, text=True, timeout=BOUND)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Demo ready" not in result.stdout


@pytest.mark.slow
def test_demo_ready_is_printed_when_the_server_answers(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([str(ROOT / "scripts" / "demo")], cwd=ROOT, env=_env(port, tmp_path), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    ready = threading.Event()
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Demo ready"):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(BOUND), lines
        # The line came after the server answered, so it answers now, on the URL the line names.
        assert lines[-1].strip() == f"Demo ready: open http://127.0.0.1:{port}/ (Ctrl-C stops it)"
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the script's own session: the script and its server
        proc.wait(timeout=BOUND)
        reader.join(timeout=BOUND)
