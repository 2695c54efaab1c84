"""The connect flow: /connect/start and /connect/callback."""
