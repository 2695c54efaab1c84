"""Admin console: operators sign in through Auth0, search connections, revoke, read the audit trail."""
