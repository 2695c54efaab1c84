"""Scenario 8: the README's demo command, started from a clean checkout as a newcomer would run
it, serves a page that Chromium clicks through to a connected sandbox account (and the admin
console's demo login shows that connection).

The checkout is a ``git clone`` of this repository's committed HEAD: uncommitted changes are not
in it, exactly as on a newcomer's machine. The virtualenv is reused (``VENV``) to save the
download; ``scripts/demo`` still runs its own install step against it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

try:
    from . import parties
    from .conftest import ROOT, VENV_BIN, file_tail
except ImportError:
    import parties
    from conftest import ROOT, VENV_BIN, file_tail

START_TIMEOUT = 120  # seconds: pip's "already satisfied" check, migrations, server start


@pytest.fixture
def demo_checkout(e2e_requirements, tmp_path) -> Path:
    checkout = tmp_path / "newcomer"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(checkout)], check=True, timeout=60)
    return checkout


@pytest.fixture
def demo_server(demo_checkout, tmp_path):
    port = parties.free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "demo.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "VENV": str(VENV_BIN.parent), "PORT": str(port)}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(demo_checkout / "scripts" / "demo")], cwd=demo_checkout, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"scripts/demo exited with {process.returncode}:\n{file_tail(log_path)}")
            try:
                if requests.get(base_url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"scripts/demo did not answer within {START_TIMEOUT} s:\n{file_tail(log_path)}")
            time.sleep(0.3)
        yield base_url, log_path
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def test_newcomer_clicks_through_the_demo_to_a_connected_sandbox_account(demo_server, page):
    base_url, log_path = demo_server
    page.goto(base_url + "/")
    page.click("#sign-in")
    page.click("#user-alice")  # the demo issuer's sign-in page
    expect(page.locator("#user")).to_contain_text("demo|alice")
    page.click("#connect-sandbox")
    page.fill("#account", "newcomer")  # the sandbox provider's consent page
    page.click("#allow")
    expect(page).to_have_url(base_url + "/demo/spa")
    expect(page.locator("#outcome")).to_have_text("Connected to Sandbox (demo).")  # the display name
    expect(page.locator("#status-sandbox")).to_have_text("Connected")
    page.click("#call-api")  # through the connector's proxy, with the stored token
    expect(page.locator("#api-result")).to_contain_text('"id": "newcomer"')

    page.goto(base_url + "/admin/")
    page.click("#login-demo")
    expect(page.locator("main")).to_contain_text("demo|alice")
    expect(page.locator("main")).to_contain_text("sandbox")

    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, file_tail(log_path)
