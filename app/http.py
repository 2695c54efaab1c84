"""The one HTTP client for outbound calls (providers, JWKS, discovery)."""
from __future__ import annotations

import requests

USER_AGENT = "oauth-connector/1.0"


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    # Never read proxy settings or .netrc credentials from the environment for these calls.
    session.trust_env = False
    return session


def get_json(session: requests.Session, url: str, timeout: tuple[float, float], max_bytes: int = 1 << 20) -> dict:
    """GET a JSON object; raises ``ValueError`` or ``requests.RequestException`` on failure."""
    response = session.get(url, timeout=timeout, allow_redirects=False, headers={"Accept": "application/json"})
    response.raise_for_status()
    if len(response.content) > max_bytes:
        raise ValueError(f"response from {url} is larger than {max_bytes} bytes")
    data = response.json()
    if not isinstance(data, dict):
        raise ValueError(f"response from {url} is not a JSON object")
    return data
