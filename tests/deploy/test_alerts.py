"""deploy/prometheus/alerts.yml parses and references only metrics that exist.

KNOWN_METRICS is the one list of the service's metric names (issue 16, "Metrics"); a rule that names
anything else (a typo, a renamed metric) fails here. EXTERNAL_METRICS come from Prometheus itself and
the blackbox exporter."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"

KNOWN_METRICS = frozenset({
    "connector_http_requests_total", "connector_http_request_duration_seconds",
    "connector_connects_total", "connector_refreshes_total", "connector_refresh_duration_seconds",
    "connector_token_requests_total", "connector_proxy_requests_total", "connector_revocations_total",
    "connector_webhook_deliveries_total", "connector_webhook_backlog", "connector_connections",
    "connector_oldest_due_refresh_age_seconds",
})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
EXTERNAL_METRICS = frozenset({"up", "probe_success"})

# PromQL words that are not metric names: functions, aggregations, operators, modifiers.
PROMQL_WORDS = frozenset("""
    sum avg min max count stddev stdvar topk bottomk quantile count_values group by without on ignoring
    group_left group_right and or unless bool offset rate irate increase delta idelta deriv predict_linear
    histogram_quantile abs ceil floor round clamp clamp_min clamp_max absent absent_over_time time vector
    scalar sort sort_desc label_replace label_join changes resets avg_over_time min_over_time max_over_time
    sum_over_time count_over_time last_over_time quantile_over_time timestamp exp ln log2 log10 sqrt
    """.split())


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (label matchers, ranges and label lists removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set(re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)", text))
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]", n)}


def known(name: str) -> bool:
    if name in KNOWN_METRICS or name in EXTERNAL_METRICS:
        return True
    return any(name.endswith(s) and name[:-len(s)] in KNOWN_METRICS for s in HISTOGRAM_SUFFIXES)


def _rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_rules_parse_and_have_the_required_fields():
    rules = _rules()
    names = {rule["alert"] for rule in rules}
    assert {"ConnectorRefreshFailureRateHigh", "ConnectorNeedsReauthSpike", "ConnectorWebhookBacklog",
            "ConnectorOldestDueRefreshLate", "ConnectorNotReady"} <= names
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r["alert"])
def test_rules_reference_only_known_metrics(rule):
    names = metric_names(rule["expr"])
    assert names, f"{rule['alert']}: no metric found in its expression"
    assert {n for n in names if not known(n)} == set()


def test_the_checker_catches_unknown_names():
    expr = 'sum by (provider) (rate(connector_refreshs_total{outcome="ok"}[5m])) > 0 and up == 0'
    assert metric_names(expr) == {"connector_refreshs_total", "up"}
    assert not known("connector_refreshs_total") and known("connector_http_request_duration_seconds_bucket")
