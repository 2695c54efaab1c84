"""JSON API: problem+json errors, Auth0 bearer tokens."""
