"""The Prometheus text exposition format (version 0.0.4), written out by hand.

Pure Python, no Django: the recorder uses it too. callvault computes almost every
figure at scrape time (aggregate queries, recorder snapshot files), so a metrics
library's registry of live objects would add a dependency without doing any work
for us; what is left is this renderer and one thread-safe labelled histogram.
"""

from __future__ import annotations

import math
import re
import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
KINDS = ("counter", "gauge", "histogram", "summary", "untyped")


def format_value(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def format_bound(bound: float) -> str:
    """A bucket bound in canonical float form (``1.0``, ``0.005``), as OpenMetrics requires."""
    bound = float(bound)
    return "+Inf" if math.isinf(bound) else repr(bound)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class Family:
    """One metric family: a HELP and TYPE header and its samples."""

    def __init__(self, name: str, kind: str, help: str) -> None:
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"invalid metric name {name!r}")
        if kind not in KINDS:
            raise ValueError(f"invalid metric type {kind!r}")
        self.name = name
        self.kind = kind
        self.help = help
        self.samples: list[tuple[str, tuple[tuple[str, str], ...], float]] = []

    def add(self, value: float, labels: Mapping[str, str] | None = None, *, suffix: str = "") -> Family:
        pairs = tuple((labels or {}).items())
        for key, _ in pairs:
            if not _LABEL_RE.fullmatch(key) or key.startswith("__"):
                raise ValueError(f"invalid label name {key!r}")
        self.samples.append((self.name + suffix, pairs, value))
        return self

    def add_histogram(
        self,
        buckets: Sequence[float],
        counts: Sequence[int],
        total: float,
        labels: Mapping[str, str] | None = None,
    ) -> Family:
        """Add one histogram child from per-bucket (not cumulative) counts; ``counts[-1]`` is +Inf."""
        if len(counts) != len(buckets) + 1:
            raise ValueError("a histogram needs one count per bucket plus one for +Inf")
        base = dict(labels or {})
        running = 0
        for bound, n in zip(buckets, counts, strict=False):
            running += n
            self.add(running, {**base, "le": format_bound(bound)}, suffix="_bucket")
        running += counts[-1]
        self.add(running, {**base, "le": "+Inf"}, suffix="_bucket")
        self.add(float(total), base, suffix="_sum")
        self.add(running, base, suffix="_count")
        return self


def render(families: Iterable[Family]) -> str:
    out: list[str] = []
    seen: set[str] = set()
    for fam in families:
        if fam.name in seen:
            raise ValueError(f"metric family {fam.name} rendered twice")
        seen.add(fam.name)
        out.append(f"# HELP {fam.name} {_escape_help(fam.help)}")
        out.append(f"# TYPE {fam.name} {fam.kind}")
        for name, labels, value in fam.samples:
            if labels:
                inner = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in labels)
                out.append(f"{name}{{{inner}}} {format_value(value)}")
            else:
                out.append(f"{name} {format_value(value)}")
    out.append("")
    return "\n".join(out)


class Histogram:
    """A labelled, cumulative histogram that threads may observe concurrently."""

    def __init__(self, name: str, help: str, buckets: Sequence[float], labelnames: Sequence[str]) -> None:
        self.name = name
        self.help = help
        self.buckets = tuple(sorted(float(b) for b in buckets))
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()
        self._children: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, value: float, *labelvalues: str) -> None:
        if len(labelvalues) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}")
        index = bisect_left(self.buckets, value)
        with self._lock:
            child = self._children.get(labelvalues)
            if child is None:
                child = ([0] * (len(self.buckets) + 1), [0.0])
                self._children[labelvalues] = child
            child[0][index] += 1
            child[1][0] += value

    def family(self) -> Family:
        fam = Family(self.name, "histogram", self.help)
        with self._lock:
            children = sorted((k, list(c[0]), c[1][0]) for k, c in self._children.items())
        for labelvalues, counts, total in children:
            fam.add_histogram(
                self.buckets, counts, total, dict(zip(self.labelnames, labelvalues, strict=True))
            )
        return fam

    def reset(self) -> None:
        with self._lock:
            self._children.clear()
