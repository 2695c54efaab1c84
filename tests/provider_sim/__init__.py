"""One simulated OAuth provider, parameterised by a behaviour profile (``profile.Profile``).

``profiles.PROFILES`` describes the catalog's providers as their documentation (or, where marked,
observation) says they behave; ``server.Simulator`` serves one profile on a loopback port and
records every request it gets, so conformance tests can assert on the request shape.
"""
