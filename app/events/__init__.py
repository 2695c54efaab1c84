"""Connection lifecycle events: the outbox (``outbox``), signed webhooks (``webhooks``), the feed (``feed``).

Kept free of imports: ``app.models`` imports ``app.events.model``.
"""
