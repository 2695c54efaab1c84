"""Provider answers read by oauth_client (11.18: the account lookup's body is capped)."""
import pytest

from app import oauth_client
from app.errors import ProviderError
from app.oauth_client import TokenResponse
from app.providers.spec import ProviderSpec


def test_an_oversized_account_lookup_answer_is_refused(stub):
    spec = ProviderSpec(name="stub", display_name="Stub", account_id_source="userinfo",
                        account_id_url=f"{stub.url}/api/big", account_id_field="id")  # 2 MiB
    token = TokenResponse(access_token="a", refresh_token=None, token_type="Bearer", expires_at=None, scopes=())
    with pytest.raises(ProviderError) as caught:
        oauth_client.fetch_account_id(spec, token, (1, 2))
    assert caught.value.code == "account_lookup_failed" and "bytes" in caught.value.description


def test_the_account_lookup_reads_the_id(stub):
    access, _ = stub.issue()
    spec = ProviderSpec(name="stub", display_name="Stub", account_id_source="userinfo",
                        account_id_url=f"{stub.url}/api/me", account_id_field="path")
    token = TokenResponse(access_token=access, refresh_token=None, token_type="Bearer", expires_at=None, scopes=())
    assert oauth_client.fetch_account_id(spec, token, (1, 2)) == "/api/me"
