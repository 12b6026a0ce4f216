"""The per-route series bound once (``Metrics.route``) count into the same samples a
``labels()`` lookup would."""

from __future__ import annotations

from data_plane.metrics import Metrics


def _sample(metrics: Metrics, name: str, labels: dict[str, str]) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_route_series_are_the_labelled_children() -> None:
    metrics = Metrics()
    series = metrics.route("chat")
    assert metrics.route("chat") is series
    series.requests(200).inc()
    series.requests(200).inc()
    series.requests(429).inc()
    series.latency.observe(0.02)
    series.ttft.observe(0.01)
    series.prompt.inc(40)
    series.completion.inc(20)
    metrics.route("-").requests(401).inc()

    assert _sample(metrics, "asc_dp_requests_total", {"route": "chat", "status": "200"}) == 2
    assert _sample(metrics, "asc_dp_requests_total", {"route": "chat", "status": "429"}) == 1
    assert _sample(metrics, "asc_dp_requests_total", {"route": "-", "status": "401"}) == 1
    assert _sample(metrics, "asc_dp_request_seconds_count", {"route": "chat"}) == 1
    assert _sample(metrics, "asc_dp_time_to_first_token_seconds_sum", {"route": "chat"}) == 0.01
    assert _sample(metrics, "asc_dp_tokens_total", {"route": "chat", "kind": "prompt"}) == 40
    assert _sample(metrics, "asc_dp_tokens_total", {"route": "chat", "kind": "completion"}) == 20
    # A labels() lookup finds the same child.
    metrics.requests.labels("chat", "200").inc()
    assert _sample(metrics, "asc_dp_requests_total", {"route": "chat", "status": "200"}) == 3
