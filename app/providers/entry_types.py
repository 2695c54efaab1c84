"""The value types of a provider entry: names, dotted paths, scopes, URLs, each a pattern or a check."""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from . import url_template

MAX_LIFETIME = 20 * 366 * 24 * 3600
# Fields of POST /connect/start, and the built-in placeholders: no param may take these names.
RESERVED_PARAM_NAMES = ("provider", "return_to", "access_token", "scopes", "csrf_token", "client_id", "token")
# Parameters the flow itself sends: an entry's extra parameters may not replace them.
RESERVED_AUTHORIZE_PARAMS = ("response_type", "client_id", "redirect_uri", "state", "code_challenge",
                             "code_challenge_method", "nonce")
RESERVED_TOKEN_PARAMS = ("grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "client_id",
                         "client_secret", "client_assertion", "client_assertion_type")
RESERVED_HEADERS = ("authorization", "content-type", "content-length", "host", "cookie", "transfer-encoding")


def compiles(pattern: str) -> str:
    try:
        compiled = re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        raise ValueError("must be a valid regular expression (it is matched against the whole value)") from None
    if compiled.fullmatch(""):
        raise ValueError("must not match an empty value")
    return pattern


def _not_reserved(reserved: tuple[str, ...]):
    def check(name: str) -> str:
        if name.lower() in reserved:
            raise ValueError(f"{name!r} is reserved")
        return name
    return check


def url_json_schema(description: str) -> dict:
    return {"pattern": url_template.URL_JSON_PATTERN, "description": description}


NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
DOTTED_PATH_PATTERN = r"^[A-Za-z0-9_$-]{1,64}(\.[A-Za-z0-9_$-]{1,64}){0,7}$"
QUERY_NAME_PATTERN = r"^[A-Za-z0-9_.~-]{1,64}$"
SCOPE_PATTERN = r"^[\x21\x23-\x5b\x5d-\x7e]{1,256}$"
# What the connector reads from a provider's error answer (oauth_client.safe_code): anything else
# there is read as provider_error, so a reauth code outside it could never match.
ERROR_CODE_PATTERN = r"^[A-Za-z0-9_]{1,64}$"
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$"
SINGLE_LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
# What each pattern means, for error messages (a regex is no explanation)
PATTERN_MEANINGS = {
    NAME_PATTERN: "a name of lowercase letters, digits and _ (a letter first, at most 32)",
    DOTTED_PATH_PATTERN: "a dotted path such as authed_user.access_token",
    QUERY_NAME_PATTERN: "a parameter name of letters, digits and _ . ~ - (at most 64)",
    SCOPE_PATTERN: "a scope (printable ASCII without space, quote or backslash; at most 256)",
    ERROR_CODE_PATTERN: "an OAuth error code of letters, digits and _ (at most 64; a provider's code with other "
                        "characters, or a message, is read as provider_error)",
    HEADER_NAME_PATTERN: "an HTTP header name",
    SINGLE_LINE_PATTERN: "a single line without control characters",
    r"\S": "a non-blank string",
}
Url = Annotated[str, StringConstraints(min_length=1, max_length=url_template.MAX_URL_LENGTH),
                AfterValidator(url_template.check_url_template)]
ProviderName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
ParamName = Annotated[str, StringConstraints(pattern=NAME_PATTERN),
                      AfterValidator(_not_reserved(RESERVED_PARAM_NAMES))]
DottedPath = Annotated[str, StringConstraints(pattern=DOTTED_PATH_PATTERN)]
# RFC 6749 §3.3 scope-token; RFC 6749 §5.2 error codes are the same characters plus space
Scope = Annotated[str, StringConstraints(pattern=SCOPE_PATTERN)]
ErrorCode = Annotated[str, StringConstraints(pattern=ERROR_CODE_PATTERN)]
ParamValue = Annotated[str, StringConstraints(max_length=512, pattern=SINGLE_LINE_PATTERN)]
AuthorizeParamName = Annotated[str, StringConstraints(pattern=QUERY_NAME_PATTERN),
                               AfterValidator(_not_reserved(RESERVED_AUTHORIZE_PARAMS))]
TokenParamName = Annotated[str, StringConstraints(pattern=QUERY_NAME_PATTERN),
                           AfterValidator(_not_reserved(RESERVED_TOKEN_PARAMS))]
HeaderName = Annotated[str, StringConstraints(pattern=HEADER_NAME_PATTERN),
                       AfterValidator(_not_reserved(RESERVED_HEADERS))]
ParamPattern = Annotated[str, StringConstraints(min_length=1, max_length=256), AfterValidator(compiles)]
Seconds = Annotated[int, Field(gt=0, le=MAX_LIFETIME)]
