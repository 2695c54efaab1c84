"""`.env.example` lists every environment variable that config.py reads.

config.py's reads are found in its syntax tree, whatever helper does the reading: a string argument
of any call that is also given the environment (``env.get("X")``, ``env["X"]``, ``_number(env, "X", 5)``,
``os.environ.get("X")``, ``os.getenv("X")``), and every variable a ConfigError message names
(``"X: required"``). Per-provider credentials (``<NAME>_CLIENT_ID``) are a pattern, checked apart."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"[A-Z][A-Z0-9_]*[A-Z0-9]")
ENV_NAMES = {"env", "environ", "environment", "os_environ"}


def _is_env(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id.lower() in ENV_NAMES or "env" in node.id.lower()
    if isinstance(node, ast.Attribute):
        return node.attr in ("environ", "env", "_env") or _is_env(node.value)
    return False


def _strings(nodes) -> set[str]:
    return {n.value for n in nodes
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and NAME.fullmatch(n.value)}


def config_reads(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and _is_env(node.value):
            found |= _strings([node.slice])
        elif isinstance(node, ast.Call):
            func = node.func
            receiver_is_env = isinstance(func, ast.Attribute) and _is_env(func.value)
            is_getenv = isinstance(func, ast.Attribute) and func.attr == "getenv"
            if receiver_is_env or is_getenv or any(_is_env(arg) for arg in node.args):
                found |= _strings(node.args)
            if isinstance(func, ast.Name) and func.id == "ConfigError" and node.args:
                first = node.args[0]
                text = first.value if isinstance(first, ast.Constant) else (
                    first.values[0].value if isinstance(first, ast.JoinedStr) and first.values
                    and isinstance(first.values[0], ast.Constant) else "")
                if isinstance(text, str) and (m := re.match(r"([A-Z][A-Z0-9_]*[A-Z0-9]):", text)):
                    found.add(m.group(1))
    return found


def documented(text: str) -> set[str]:
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def test_env_example_covers_every_variable_config_reads():
    reads = config_reads((ROOT / "config.py").read_text())
    assert {"DATABASE_URL", "SECRET_KEY", "AUTH0_AUDIENCE", "TOKEN_ENCRYPTION_KEYS", "ADMIN_ROLE"} <= reads  # sanity
    listed = documented((ROOT / ".env.example").read_text())
    assert sorted(reads - listed) == []
    assert {"GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET"} <= listed  # the <NAME>_CLIENT_ID pattern, by example


def test_the_reader_finds_reads_in_every_style():
    source = '''
import os
def load(env):
    a = env.get("ALPHA", "")
    b = env["BRAVO"]
    c = _number(env, "CHARLIE", 5.0)
    d = os.environ.get("DELTA")
    e = os.getenv("ECHO")
    raise ConfigError(f"FOXTROT: required, not {a!r}")
    return {"NOT_READ": 1, "SQLALCHEMY_DATABASE_URI": a}
'''
    assert config_reads(source) == {"ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT"}
