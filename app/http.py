"""The one HTTP client for outbound calls (providers, JWKS, discovery)."""
from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter

USER_AGENT = "oauth-connector/1.0"

# One connection pool for the process (urllib3's pools are thread-safe): a batch of refreshes
# against one provider reuses kept-alive connections instead of a TCP + TLS handshake each.
_ADAPTER = HTTPAdapter(pool_connections=32, pool_maxsize=32)


def configure(session: requests.Session) -> requests.Session:
    """Our defaults on any requests session (also Authlib's OAuth2Session, a subclass)."""
    session.headers["User-Agent"] = USER_AGENT
    # Never read proxy settings or .netrc credentials from the environment for these calls.
    session.trust_env = False
    session.mount("https://", _ADAPTER)
    session.mount("http://", _ADAPTER)
    return session


def new_session() -> requests.Session:
    return configure(requests.Session())


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
