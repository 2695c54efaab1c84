import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import stub_env

METRICS_TOKEN = "metrics-token-" + "x" * 20


@pytest.fixture
def env(stub, tmp_path):
    return stub_env(stub, tmp_path, METRICS_TOKEN=METRICS_TOKEN)


def parse(text: str) -> dict[tuple, float]:
    """{(sample name, sorted label items): value} of a /metrics answer."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def scrape(client):
    def scrape() -> dict:
        response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert response.status_code == 200, response.data
        assert response.mimetype == "text/plain"
        return parse(response.get_data(as_text=True))
    return scrape
