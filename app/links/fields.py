"""``reconnect_url`` on a dead connection's entry in the user's list of connections."""
from __future__ import annotations

from ..models import ACTIVE, Connection
from .tokens import reconnect_url_for


def reconnect_fields(connection: Connection) -> dict:
    """``{"reconnect_url": ...}`` for a connection that is not active, when links are configured."""
    if connection.status == ACTIVE:
        return {}
    url = reconnect_url_for(connection.user_id, connection.provider)
    return {"reconnect_url": url} if url else {}
