"""The hand-written exposition format, read back by the reference parser (prometheus_client)."""

from __future__ import annotations

import math
import threading

import pytest

from callvault.apps.ops.exposition import Family, Histogram, format_value, render
from tests.ops.conftest import parse, value


def test_rendered_families_parse_back_with_the_reference_parser() -> None:
    text = render(
        [
            Family("t_calls", "gauge", 'Calls by "state"\nsecond line \\ end')
            .add(3, {"state": "active"})
            .add(0, {"state": 'we"ird\\na\nme'}),
            Family("t_events_total", "counter", "Events.").add(12345678901234),
            Family("t_ratio", "gauge", "A float.").add(0.125),
            Family("t_latency_seconds", "summary", "Quantiles.")
            .add(math.nan, {"quantile": "0.5"})
            .add(0.0, suffix="_sum")
            .add(0, suffix="_count"),
            Family("t_limits", "gauge", "Infinities.").add(math.inf, {"x": "a"}).add(-math.inf, {"x": "b"}),
        ]
    )
    samples, types = parse(text)
    assert types == {
        "t_calls": "gauge",
        "t_events": "counter",
        "t_ratio": "gauge",
        "t_latency_seconds": "summary",
        "t_limits": "gauge",
    }
    assert value(samples, "t_calls", state="active") == 3
    assert value(samples, "t_calls", state='we"ird\\na\nme') == 0
    assert value(samples, "t_events_total") == 12345678901234
    assert value(samples, "t_ratio") == 0.125
    assert math.isnan(value(samples, "t_latency_seconds", quantile="0.5"))
    assert value(samples, "t_limits", x="a") == math.inf
    assert value(samples, "t_limits", x="b") == -math.inf
    assert '# HELP t_calls Calls by "state"\\nsecond line \\\\ end\n' in text


def test_histogram_buckets_are_cumulative_and_a_value_on_a_bound_falls_in_that_bucket() -> None:
    h = Histogram("t_seconds", "Durations.", (0.1, 1.0), ("route",))
    for v in (0.05, 0.1, 0.5, 1.0, 7.0):
        h.observe(v, "a")
    h.observe(0.2, "b")
    samples, types = parse(render([h.family()]))
    assert types == {"t_seconds": "histogram"}
    assert value(samples, "t_seconds_bucket", route="a", le="0.1") == 2
    assert value(samples, "t_seconds_bucket", route="a", le="1.0") == 4
    assert value(samples, "t_seconds_bucket", route="a", le="+Inf") == 5
    assert value(samples, "t_seconds_count", route="a") == 5
    assert value(samples, "t_seconds_sum", route="a") == pytest.approx(8.65)
    assert value(samples, "t_seconds_count", route="b") == 1


def test_histogram_counts_every_observation_from_concurrent_threads() -> None:
    h = Histogram("t_seconds", "Durations.", (0.5,), ("route",))

    def work() -> None:
        for _ in range(5000):
            h.observe(0.25, "r")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    samples, _ = parse(render([h.family()]))
    assert value(samples, "t_seconds_count", route="r") == 20000
    assert value(samples, "t_seconds_sum", route="r") == 5000.0


@pytest.mark.parametrize(
    ("name", "kind", "labels"),
    [
        ("bad-name", "gauge", {}),
        ("ok", "meter", {}),
        ("ok", "gauge", {"bad-label": "x"}),
        ("ok", "gauge", {"__x": "y"}),
    ],
)
def test_invalid_names_types_and_labels_are_refused(name: str, kind: str, labels: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        Family(name, kind, "help").add(1, labels)


def test_a_family_rendered_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="twice"):
        render([Family("t", "gauge", "x"), Family("t", "gauge", "y")])


def test_values_are_written_as_prometheus_expects() -> None:
    assert [format_value(v) for v in (True, 3, 2.0, 0.5, math.nan, math.inf, -math.inf, 1e20)] == [
        "1",
        "3",
        "2",
        "0.5",
        "NaN",
        "+Inf",
        "-Inf",
        "1e+20",
    ]
