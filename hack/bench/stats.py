"""Samples and what the report says about them: median, p10/p90, ratios of medians.

Medians, not means: one slow outlier on a shared 2-core machine should not move the figure.
The spread (10th and 90th percentile) says how much to trust it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Samples:
    """Measurements of one metric for one runtime, plus failures and the first error seen."""

    values: list[float] = field(default_factory=list)
    failures: int = 0
    error: str | None = None

    def add(self, value: float) -> None:
        self.values.append(value)

    def fail(self, why: str) -> None:
        self.failures += 1
        if self.error is None:
            self.error = why

    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def summary(self, offset: float = 0.0) -> dict[str, Any]:
        """JSON-ready figures; ``offset`` is subtracted from every value (crun's wrapper)."""
        values = sorted(max(v - offset, 0.0) for v in self.values)
        out: dict[str, Any] = {
            "n": len(values),
            "failures": self.failures,
            "error": self.error,
            "median": None,
            "p10": None,
            "p90": None,
            "min": None,
        }
        if values:
            out["median"] = statistics.median(values)
            out["min"] = values[0]
            if len(values) >= 2:
                cuts = statistics.quantiles(values, n=10, method="inclusive")
                out["p10"], out["p90"] = cuts[0], cuts[-1]
            else:
                out["p10"] = out["p90"] = values[0]
        if offset:
            out["wrapper_subtracted"] = offset
            out["raw_median"] = statistics.median(self.values) if self.values else None
        return out


@dataclass
class Metric:
    """One measured quantity across runtimes (e.g. ``state`` latency with 100 containers alive)."""

    key: str
    scenario: str
    label: str
    unit: str  # "s", "KiB", "bytes", "count"
    values: dict[str, Samples] = field(default_factory=dict)
    subtract_wrapper: bool = False  # a per-command latency: crun's unshare wrapper is taken off

    def samples(self, runtime: str) -> Samples:
        return self.values.setdefault(runtime, Samples())


class Results:
    """Every metric of one benchmark run, in the order they were measured."""

    def __init__(self, wrapped: set[str]) -> None:
        self.metrics: dict[str, Metric] = {}
        self.wrapped = wrapped  # runtimes whose commands ran inside the wrapper
        self.wrapper_cost: float | None = None  # median seconds of the wrapper alone
        self.notes: list[str] = []
        self.texts: dict[str, str] = {}  # free-form sections (the import profile)

    def metric(
        self, key: str, scenario: str, label: str, unit: str = "s", subtract_wrapper: bool = False
    ) -> Metric:
        if key not in self.metrics:
            self.metrics[key] = Metric(
                key, scenario, label, unit, subtract_wrapper=subtract_wrapper
            )
        return self.metrics[key]

    def summary(self, metric: Metric, runtime: str) -> dict[str, Any]:
        offset = 0.0
        if metric.subtract_wrapper and runtime in self.wrapped and self.wrapper_cost:
            offset = self.wrapper_cost
        return metric.values[runtime].summary(offset)

    def to_dict(self) -> dict[str, Any]:
        """The metrics as JSON: per runtime figures, and pyrunc's ratio to every other runtime."""
        out: dict[str, Any] = {}
        for key, metric in self.metrics.items():
            figures = {name: self.summary(metric, name) for name in metric.values}
            out[key] = {
                "scenario": metric.scenario,
                "label": metric.label,
                "unit": metric.unit,
                "runtimes": figures,
                "ratios": ratios(figures),
            }
        return out


def ratios(figures: dict[str, dict[str, Any]], subject: str = "pyrunc") -> dict[str, float | None]:
    """``pyrunc/<other>`` ratios of medians (None where either median is missing or zero)."""
    mine = figures.get(subject, {}).get("median")
    out: dict[str, float | None] = {}
    for name, fig in figures.items():
        if name == subject or name not in ("runc", "crun"):
            continue
        other = fig.get("median")
        out[f"{subject}/{name}"] = mine / other if mine and other else None
    return out
