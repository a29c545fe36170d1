"""Reading /metrics in tests: the Prometheus text parsed by prometheus-client's own parser."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, keyed by its name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 for a series that has not appeared yet (a counter not yet moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client: Any, **headers: str) -> Samples:
    """GET /metrics with the Django test client (from loopback unless told otherwise)."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.status_code
    return parse(response.content.decode())
