"""The 26 catalog providers as their documentation says they behave (``../shared/PROVIDERS.md``).

Each setting's source is the section of PROVIDERS.md for that provider, with the key it cites
there ([Nango], [PSA], [arctic], [disc], or the provider's own docs page). Settings that rest on
no source are listed in the profile's ``unverified`` and commented "unverified": they are the
strictest reading, so the connector is tested against it; change them to try the other one.
"""
from __future__ import annotations

from .profile import ErrorAnswer, Profile, Revocation

INVALID_GRANT = ErrorAnswer(400, {"error": "invalid_grant"})

GITHUB_COMMON = dict(
    authorize_url="https://github.com/login/oauth/authorize",  # docs.github.com authorizing-oauth-apps
    token_url="https://github.com/login/oauth/access_token",
    # rest/apps/oauth-applications: DELETE the whole grant, Basic client_id:secret, JSON {"access_token"}; 204
    revocation=Revocation("github_grant", "https://api.github.com/applications/{client_id}/grant", method="DELETE",
                          auth="basic", token="access", ok_status=204),
    userinfo=(("https://api.github.com/user", {"id": 4242, "login": "octo"}),),
    account_ids=("4242",),
    client_auth="post",  # documented params; Basic unverified, refused here
    pkce="optional",  # github.blog changelog 2025-07-14: S256 supported, not required
    sends_iss=True, issuer="https://github.com/login/oauth",  # RFC 8414 metadata (api-evangelist probe 2026)
    response_scope_separator=",",  # `repo,gist`
    form_unless_accept_json=True,  # form-encoded unless Accept: application/json
    error_status=200,  # errors are HTTP 200 with an error field (octokit/oauth-methods.js src/utils.ts)
    token_type="bearer",
)

HUBSPOT_COMMON = dict(
    authorize_url="https://app.hubspot.com/oauth/authorize",  # developers.hubspot.com OAuth docs
    # v1 revoke: refresh token only, access tokens unaffected, does not uninstall
    revocation=Revocation("delete_token_url", "https://api.hubapi.com/oauth/v1/refresh-tokens/{token}",
                          method="DELETE", token="refresh", ok_status=204),
    client_auth="post", pkce="optional",  # form body; code_verifier accepted
    access_ttl=1800, scope_style="absent",  # scope in the answer: unverified
    rotation="same",  # non-rotating: unverified
)

SLACK_COMMON = dict(
    authorize_url="https://slack.com/oauth/v2/authorize",  # docs.slack.dev installing-with-oauth
    token_url="https://slack.com/api/oauth.v2.access",
    # auth.revoke takes the token (Web API: Bearer or token=), answers {ok, revoked}
    revocation=Revocation("slack_api", "https://slack.com/api/auth.revoke", token="access",
                          ok_body={"ok": True, "revoked": True},
                          # Web API errors are HTTP 200 with ok:false (slack-api-ref auth.revoke.json:
                          # invalid_auth, not_authed, token_revoked): unverified for auth.revoke itself.
                          refusal=ErrorAnswer(200, {"ok": False, "error": "invalid_auth"})),
    account_ids=("U0USER1",),  # authed_user.id
    client_auth="either",  # Basic preferred; client_id/client_secret params accepted
    pkce="refused",  # a confidential app without PKCE enabled: pkce_not_allowed
    scope_param="user_scope", scope_separator=",", response_scope_separator=",",  # [Nango]
    token_path="authed_user",  # the user token is nested ([Nango] alternate_access_token_response_path)
    success_flag="ok", error_status=200,  # HTTP 200 with ok:false (slack-api-ref oauth.v2.access.json)
    token_type="user",
    token_extras=(("team", {"id": "T0TEAM1", "name": "Acme"}), ("app_id", "A0APP1"),
                  ("authed_user", {"id": "U0USER1"})),
)

PROFILES: dict[str, Profile] = {p.name: p for p in [
    Profile(name="github", **GITHUB_COMMON,
            access_ttl=None, issues_refresh_token=False,  # OAuth app: no expiry, no refresh token
            dead_grant=ErrorAnswer(200, {"error": "bad_refresh_token"}, form=True)),
    Profile(name="github_app", **GITHUB_COMMON,
            access_ttl=28800, refresh_token_expires_in=15811200,  # refreshing-user-access-tokens.md
            rotation="rotating",  # new access and refresh token; the old refresh token is single-use
            scope_style="empty",  # "scope is always an empty string"
            dead_grant=ErrorAnswer(200, {"error": "bad_refresh_token"}, form=True),  # observed, not in docs
            unverified=("dead_grant",)),
    Profile(name="google",
            authorize_url="https://accounts.google.com/o/oauth2/v2/auth",  # [disc]
            token_url="https://oauth2.googleapis.com/token",
            # web-server#tokenrevoke: POST token=…, access or refresh; revoking either ends the grant
            revocation=Revocation("rfc7009", "https://oauth2.googleapis.com/revoke", auth="any"),
            userinfo=(("https://openidconnect.googleapis.com/v1/userinfo", {"sub": "1077", "email": "a@example.com"}),),
            account_ids=("1077",),
            client_auth="either", pkce="optional",  # [disc]: basic + post; plain + S256
            sends_iss=True, issuer="https://accounts.google.com",  # observed (TheBitPoets/2cornot2c#607)
            id_token_for_openid=True,
            access_ttl=3599, rotation="none",  # refresh tokens do not rotate
            dead_grant=ErrorAnswer(400, {"error": "invalid_grant",
                                         "error_description": "Token has been expired or revoked."}),
            unverified=("sends_iss",)),
    Profile(name="microsoft",
            # v2-oauth2-auth-code-flow.md; {tenant} = common | organizations | consumers | a tenant id
            authorize_url="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
            token_url="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
            revocation=None,  # no OAuth revocation endpoint
            userinfo=(("https://graph.microsoft.com/v1.0/me", {"id": "87d349ed-44d7-43e1-9a83-5f2406dee5bd"}),),
            account_ids=("87d349ed-44d7-43e1-9a83-5f2406dee5bd",),
            client_auth="either", pkce="optional",  # post or Basic ("also supported"); PKCE recommended
            access_ttl=3599,  # access-tokens.md example
            rotation="new_old_valid",  # refresh-tokens.md: a new one each time, the old one not revoked
            dead_grant=ErrorAnswer(400, {"error": "invalid_grant", "error_codes": [700082],
                                         "error_description": "AADSTS700082: The refresh token has expired"}),
            connect_values=(("tenant", "common"),)),
    Profile(name="spotify",
            authorize_url="https://accounts.spotify.com/authorize",  # tutorials/code-flow
            token_url="https://accounts.spotify.com/api/token",
            revocation=None,  # none documented ([disc]'s /oauth2/revoke/v1 is undocumented)
            userinfo=(("https://api.spotify.com/v1/me", {"id": "spotify-user"}),),
            account_ids=("spotify-user",),
            client_auth="either", pkce="optional",  # docs: Basic; [disc]: basic + post
            access_ttl=3600,
            rotation="sometimes"),  # tutorials/refreshing-tokens: may or may not contain a new one
    Profile(name="slack", **SLACK_COMMON,
            # using-token-rotation (opt-in per app): 12 h tokens and a refresh token, also inside
            # authed_user; each refresh issues a new refresh token and revokes the used one.
            access_ttl=43200, rotation="rotating",
            # A refresh answers at the top level (@slack/oauth OAuthV2TokenRefreshResponse;
            # slack-web-api-client token-rotator.js): unverified for user tokens.
            refresh_token_path="",
            dead_grant=ErrorAnswer(200, {"ok": False, "error": "invalid_refresh_token"}),  # slack-api-ref
            unverified=("refresh_token_path",)),
    # Without token rotation (the default): the tokens never expire and there is no refresh token.
    Profile(name="slack_static", entry="slack", **SLACK_COMMON, access_ttl=None, issues_refresh_token=False),
    Profile(name="atlassian",
            authorize_url="https://auth.atlassian.com/authorize",  # oauth-2-3lo-apps
            token_url="https://auth.atlassian.com/oauth/token",
            revocation=None,  # [disc] lists /oauth/revoke, not documented for 3LO: unverified
            userinfo=(("https://api.atlassian.com/me", {"account_id": "5b10ac8d82e05b22cc7d4ef5"}),),
            account_ids=("5b10ac8d82e05b22cc7d4ef5",),
            client_auth="post", body_format="json",  # JSON body incl. client_id/client_secret
            pkce="optional",  # [disc] S256, not documented for 3LO: unverified
            access_ttl=3600, rotation="rotating",  # rotating refresh tokens (10-min reuse interval)
            dead_grant=ErrorAnswer(403, {"error": "invalid_grant",  # observed: HTTP 403
                                         "error_description": "Unknown or invalid refresh token."}),
            connect_values=(("cloudid", "11223344-a1b2-3b33-c444-def123456789"),),
            unverified=("revocation", "pkce")),
    Profile(name="notion",
            authorize_url="https://api.notion.com/v1/oauth/authorize",  # reference/create-a-token
            token_url="https://api.notion.com/v1/oauth/token",
            revocation=Revocation("json_token", "https://api.notion.com/v1/oauth/revoke", auth="basic",
                                  ok_body={}),
            account_ids=("bot-5f8a", "workspace-9c1d", "user-77e0"),  # bot_id / workspace_id / owner.user.id
            client_auth="basic", body_format="json", required_headers=(("Notion-Version", ""),),
            pkce="optional",  # no evidence
            access_ttl=None, scope_style="absent",  # no expires_in, no scope (notion-sdk-js api-endpoints.ts)
            token_type="bearer", rotation="rotating",
            token_extras=(("bot_id", "bot-5f8a"), ("workspace_id", "workspace-9c1d"), ("workspace_name", "Acme"),
                          ("owner", {"type": "user", "user": {"id": "user-77e0"}})),
            unverified=("pkce",)),
    Profile(name="dropbox",
            authorize_url="https://www.dropbox.com/oauth2/authorize",  # developers.dropbox.com/oauth-guide
            token_url="https://api.dropboxapi.com/oauth2/token",
            # POST with the access token as Bearer, no body; kills the token and its refresh token
            revocation=Revocation("bearer", "https://api.dropboxapi.com/2/auth/token/revoke", token="access"),
            account_ids=("dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc",),
            client_auth="either", pkce="optional",  # basic or post; S256
            access_ttl=14400, rotation="none",
            token_extras=(("account_id", "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"), ("uid", "12345"))),
    Profile(name="box",
            authorize_url="https://account.box.com/api/oauth2/authorize",  # developer.box.com oauth2
            token_url="https://api.box.com/oauth2/token",
            revocation=Revocation("rfc7009", "https://api.box.com/oauth2/revoke", auth="post"),
            userinfo=(("https://api.box.com/2.0/users/me", {"id": "11446498", "type": "user"}),),
            account_ids=("11446498",),
            client_auth="post", pkce="optional",  # PKCE: no evidence
            scope_style="absent",  # unverified: Box answers restricted_to, no scope
            access_ttl=3600, rotation="rotating",  # single-use refresh tokens
            dead_grant=ErrorAnswer(400, {"error": "invalid_grant", "error_description": "Refresh token has expired"}),
            unverified=("pkce", "scope_style")),
    Profile(name="salesforce",
            # host: login.salesforce.com | test.salesforce.com | {MyDomain}.my.salesforce.com
            authorize_url="https://{host}/services/oauth2/authorize",  # remoteaccess_oauth_web_server_flow
            token_url="https://{host}/services/oauth2/token",
            revocation=Revocation("rfc7009", "https://{host}/services/oauth2/revoke", auth="any"),
            userinfo=(("https://{host}/services/oauth2/userinfo",
                       {"user_id": "005xx000001Sv6e", "organization_id": "00Dxx0000001gPL"}),),
            account_ids=("005xx000001Sv6e", "https://login.salesforce.com/id/00Dxx0000001gPL/005xx000001Sv6e"),
            client_auth="either", pkce="optional",  # [disc] post, basic; PKCE supported
            access_ttl=None,  # no expires_in (session timeout policy)
            rotation="none",  # default; "refresh token rotation" is an opt-in app setting
            token_extras=(("instance_url", "https://acme.my.salesforce.com"),
                          ("id", "https://login.salesforce.com/id/00Dxx0000001gPL/005xx000001Sv6e"),
                          ("issued_at", "1764590000000"), ("signature", "c2lnbmF0dXJl")),
            dead_grant=ErrorAnswer(400, {"error": "invalid_grant",
                                         "error_description": "expired access/refresh token"}),  # observed
            connect_values=(("login_host", "login.salesforce.com"),)),
    Profile(name="hubspot", **HUBSPOT_COMMON,
            token_url="https://api.hubapi.com/oauth/v3/token",  # newer endpoint: standard errors
            dead_grant=INVALID_GRANT,
            unverified=("rotation", "scope_style", "token_url host")),
    # The legacy endpoint (sunset 2027-02-16) with its own error shape, as an operator still on it
    # would configure the catalog entry.
    Profile(name="hubspot_v1", entry="hubspot", **HUBSPOT_COMMON,
            token_url="https://api.hubapi.com/oauth/v1/token",
            dead_grant=ErrorAnswer(400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"}),
            entry_override=(("token_url", "https://api.hubapi.com/oauth/v1/token"),
                            ("error_shape", {"field": "status"}), ("reauth_error_codes", ["BAD_REFRESH_TOKEN"])),
            unverified=("rotation", "scope_style")),
    Profile(name="zoom",
            authorize_url="https://zoom.us/oauth/authorize",  # developers.zoom.us/docs/integrations/oauth
            token_url="https://zoom.us/oauth/token",
            revocation=Revocation("rfc7009", "https://zoom.us/oauth/revoke", auth="basic",
                                  ok_body={"status": "success"}),
            userinfo=(("https://api.zoom.us/v2/users/me", {"id": "KDcuGIm1QgePTO8WbOqwIQ", "account_id": "acct-1"}),),
            account_ids=("KDcuGIm1QgePTO8WbOqwIQ",),
            client_auth="basic",  # Basic per docs; [Nango]'s body credentials: unverified, refused here
            pkce="optional", access_ttl=3599,
            rotation="rotating",  # rotates on every refresh, the old one invalid
            dead_grant=ErrorAnswer(400, {"reason": "Invalid Token!", "error": "invalid_grant"})),
    Profile(name="linkedin",
            authorize_url="https://www.linkedin.com/oauth/v2/authorization",  # authorization-code-flow
            token_url="https://www.linkedin.com/oauth/v2/accessToken",
            revocation=None,  # unverified
            userinfo=(("https://api.linkedin.com/v2/userinfo", {"sub": "782bbtaQ"}),),
            account_ids=("782bbtaQ",),
            client_auth="post", pkce="optional",  # PKCE only for native apps: what a web app gets is unverified
            response_scope_separator=",",
            access_ttl=5184000, refresh_token_expires_in=31536000,  # programmatic-refresh-tokens (partners)
            rotation="same",  # fixed 365-day TTL, not extended by refreshing
            unverified=("revocation", "dead_grant", "pkce")),
    Profile(name="gitlab",
            authorize_url="https://{host}/oauth/authorize",  # gitlabhq doc/api/oauth2.md; [disc]
            token_url="https://{host}/oauth/token",
            revocation=Revocation("rfc7009", "https://{host}/oauth/revoke", auth="either", ok_body={}),
            userinfo=(("https://{host}/oauth/userinfo", {"sub": "1234"}), ("https://{host}/api/v4/user", {"id": 1234})),
            account_ids=("1234",),
            client_auth="either", pkce="optional",
            access_ttl=7200, token_extras=(("created_at", 1764590000),),
            rotation="rotating",  # a refresh invalidates the existing access and refresh tokens
            refresh_needs_redirect_uri=True,
            connect_values=(("host", "gitlab.com"),)),
    Profile(name="bitbucket",
            authorize_url="https://bitbucket.org/site/oauth2/authorize",  # developer.atlassian.com bitbucket oauth-2
            token_url="https://bitbucket.org/site/oauth2/access_token",
            revocation=None,
            userinfo=(("https://api.bitbucket.org/2.0/user", {"uuid": "{c1b1e6b2-8b34-4c7e-9f1e-1f0e2b3c4d5e}"}),),
            account_ids=("{c1b1e6b2-8b34-4c7e-9f1e-1f0e2b3c4d5e}",),
            client_auth="basic", pkce="optional",  # PKCE: no evidence
            scope_key="scopes",  # the answer's key is scopes
            access_ttl=7200, rotation="rotating",  # unverified: "store whatever comes back"
            dead_grant=ErrorAnswer(400, {"error": "invalid_grant", "error_description": "Invalid refresh_token"}),
            unverified=("rotation", "pkce")),
    Profile(name="discord",
            authorize_url="https://discord.com/oauth2/authorize",  # topics/oauth2 ([Nango]: /api/oauth2/authorize)
            aliases=(("authorize", "https://discord.com/api/oauth2/authorize"),),
            token_url="https://discord.com/api/oauth2/token",
            revocation=Revocation("rfc7009", "https://discord.com/api/oauth2/token/revoke", auth="either", ok_body={}),
            userinfo=(("https://discord.com/api/users/@me", {"id": "80351110224678912"}),),
            account_ids=("80351110224678912",),
            client_auth="either", pkce="optional",  # [disc] basic/post/none, S256
            sends_iss=True, issuer="https://discord.com",  # [disc] iss supported; the issuer string: unverified
            access_ttl=604800, rotation="rotating",  # a new refresh token; the old one's fate: unverified
            unverified=("issuer", "rotation", "dead_grant")),
    Profile(name="twitch",
            authorize_url="https://id.twitch.tv/oauth2/authorize",  # dev.twitch.tv/docs/authentication
            token_url="https://id.twitch.tv/oauth2/token",
            revocation=Revocation("rfc7009", "https://id.twitch.tv/oauth2/revoke", auth="client_id_post"),
            userinfo=(("https://id.twitch.tv/oauth2/validate", {"login": "ann", "user_id": "141981764"}),),
            account_ids=("141981764",),
            client_auth="post",  # post only [disc]
            pkce="optional", scope_style="list",  # scope is a JSON array
            access_ttl=14400, rotation="sometimes",  # "may return a new refresh token"
            dead_grant=ErrorAnswer(400, {"status": 400, "message": "Invalid refresh token"}),  # unverified
            unverified=("pkce", "dead_grant")),
    Profile(name="x",
            authorize_url="https://x.com/i/oauth2/authorize",  # docs.x.com oauth-2-0/authorization-code
            token_url="https://api.x.com/2/oauth2/token",
            revocation=Revocation("rfc7009", "https://api.x.com/2/oauth2/revoke", auth="basic",
                                  ok_body={"revoked": True}),
            userinfo=(("https://api.x.com/2/users/me", {"data": {"id": "2244994945", "username": "x"}}),),
            account_ids=("2244994945",),
            client_auth="basic", pkce="required",  # confidential clients: Basic; PKCE required
            access_ttl=7200, rotation="rotating",  # observed
            dead_grant=ErrorAnswer(400, {"error": "invalid_request",  # observed
                                         "error_description": "Value passed for the token was invalid."}),
            unverified=("dead_grant",)),  # observed is not documented
    Profile(name="xero",
            authorize_url="https://login.xero.com/identity/connect/authorize",  # [disc]
            token_url="https://identity.xero.com/connect/token",
            revocation=Revocation("rfc7009", "https://identity.xero.com/connect/revocation", auth="basic"),
            userinfo=(("https://identity.xero.com/connect/userinfo", {"sub": "xero-user-1"}),),
            account_ids=("xero-user-1",),
            client_auth="basic", pkce="optional",  # XeroAPI/xero-node; PKCE for web apps unverified
            issuer="https://identity.xero.com", id_token_for_openid=True,
            access_ttl=1800, rotation="rotating",  # xero-node README
            unverified=("pkce",)),
    Profile(name="quickbooks",
            authorize_url="https://appcenter.intuit.com/connect/oauth2",
            token_url="https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
            revocation=Revocation("json_token", "https://developer.api.intuit.com/v2/oauth2/tokens/revoke",
                                  auth="basic"),  # intuit/oauth-jsclient
            account_ids=("9130347596842395",),  # realmId
            client_auth="basic", pkce="optional",  # PKCE: no evidence
            callback_extras=(("realmId", "9130347596842395"),),
            access_ttl=3600, refresh_token_expires_in=8726400,
            refresh_token_expires_in_key="x_refresh_token_expires_in",
            rotation="new_old_valid",  # the value may change: store the latest (the old one's fate: unverified)
            unverified=("pkce", "rotation")),
    Profile(name="asana",
            authorize_url="https://app.asana.com/-/oauth_authorize",  # developers.asana.com/docs/oauth
            token_url="https://app.asana.com/-/oauth_token",
            revocation=Revocation("rfc7009", "https://app.asana.com/-/oauth_revoke", auth="post", token="refresh"),
            account_ids=("1201234567890",),  # data.gid
            client_auth="post", pkce="optional", default_scope="default",
            scope_style="absent",  # unverified
            access_ttl=3600, rotation="none",  # docs wording: long-lived, reused
            token_extras=(("data", {"id": 1201234567890, "gid": "1201234567890", "name": "Ann",
                                    "email": "ann@example.com"}),),
            unverified=("rotation", "scope_style")),
    Profile(name="linear",
            authorize_url="https://linear.app/oauth/authorize",  # linear.app/developers/oauth-2-0-authentication
            token_url="https://api.linear.app/oauth/token",
            revocation=Revocation("bearer", "https://api.linear.app/oauth/revoke", token="access"),
            client_auth="post", pkce="optional", scope_separator=",",
            access_ttl=86399, rotation="rotating",  # 24 h and rotation: unverified (third-party)
            unverified=("access_ttl", "rotation", "client_auth")),
    Profile(name="zendesk",
            authorize_url="https://{subdomain}.zendesk.com/oauth/authorizations/new",  # oauth_tokens reference
            token_url="https://{subdomain}.zendesk.com/oauth/tokens",
            revocation=Revocation("bearer", "https://{subdomain}.zendesk.com/api/v2/oauth/tokens/current.json",
                                  method="DELETE", token="access", ok_status=204),
            userinfo=(("https://{subdomain}.zendesk.com/api/v2/users/me.json", {"user": {"id": 35436}}),),
            account_ids=("35436",),
            client_auth="post", pkce="optional",
            body_format="either",  # the docs' example is JSON; form: unverified
            access_ttl=1800, rotation="rotating",  # deletes the previous access and refresh tokens
            connect_values=(("subdomain", "acme"),),
            unverified=("body_format",)),
    Profile(name="strava",
            authorize_url="https://www.strava.com/oauth/authorize",  # developers.strava.com/docs/authentication
            token_url="https://www.strava.com/oauth/token",
            aliases=(("token", "https://www.strava.com/api/v3/oauth/token"),),  # [Nango]
            # deauthorize takes the access token (docs: access_token=…); as Bearer: unverified
            revocation=Revocation("bearer", "https://www.strava.com/oauth/deauthorize", token="access"),
            account_ids=("134815",),  # athlete.id
            client_auth="post", pkce="optional", scope_separator=",",
            callback_extras=(("scope", "read,activity:read_all"),),  # the scopes the user left ticked
            scope_style="absent", access_ttl=21600, sends_expires_at=True,
            rotation="sometimes",  # "may change: always persist the latest"
            token_extras=(("athlete", {"id": 134815, "username": "marianne"}),),
            unverified=("revocation", "dead_grant", "pkce")),
    Profile(name="figma",
            authorize_url="https://www.figma.com/oauth",  # developers.figma.com rest-api/authentication
            token_url="https://api.figma.com/v1/oauth/token",
            refresh_url="https://api.figma.com/v1/oauth/refresh",  # a separate refresh endpoint
            revocation=None,
            userinfo=(("https://api.figma.com/v1/me", {"id": "1234", "handle": "ann"}),),
            account_ids=("1234",),
            client_auth="basic",  # [arctic], [Nango]
            pkce="optional", scope_separator=",",  # both unverified
            scope_style="absent", access_ttl=7776000,  # ~90 days: unverified
            rotation="access_only",  # a refresh returns only access_token + expires_in
            token_extras=(("user_id", 1234), ("user_id_string", "1234")),
            unverified=("pkce", "scope_separator", "access_ttl", "dead_grant")),
]}
