"""Providers as data: the catalog, the operator's providers file, OIDC discovery."""
from .registry import ProviderRegistry
from .spec import ProviderSpec

__all__ = ["ProviderRegistry", "ProviderSpec"]
