"""Prometheus metrics: one registry per server, fed by the engine, the model manager and the
front doors, read by GET /metrics.

prometheus-client (pure Python, no dependencies of its own) writes the exposition format,
escaping and histogram buckets included, and its process collector reports RSS and open file
descriptors; hand-rolling all that would be more code to get wrong for no saving.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .models.manager import ManagedModel

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)


class _Live(Collector):
    """Values read at scrape time (queue depth, workers, model state) rather than counted."""

    def __init__(self, read: Callable[[], Iterable[Metric]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        yield from self._read()


class Metrics:
    """Every metric the server exports; ``render`` gives the text for /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        ProcessCollector(registry=reg)
        self.requests = Counter(
            "whisper_requests",
            "Requests answered, by front door/route and status (HTTP code, or ok/error code "
            "for Wyoming and WebSocket)",
            ["route", "status"],
            registry=reg,
        )
        self.request_seconds = Histogram(
            "whisper_request_duration_seconds",
            "Time from request to answer, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.assist_commands = Counter(
            "whisper_assist_commands",
            "Transcripts of requests with Home Assistant names, by outcome: already a command, "
            "rewritten to the command a near-miss meant, or left as heard",
            ["outcome"],
            registry=reg,
        )
        self.rejected = Counter(
            "whisper_rejected_requests",
            "Requests refused because the model's queue was full (503 / busy)",
            ["model"],
            registry=reg,
        )
        self.audio_seconds = Counter(
            "whisper_audio_seconds",
            "Seconds of audio transcribed",
            ["model"],
            registry=reg,
        )
        self.inference_seconds = Counter(
            "whisper_inference_seconds",
            "Seconds spent in inference (wall clock on a worker)",
            ["model"],
            registry=reg,
        )
        self.real_time_factor = Histogram(
            "whisper_real_time_factor",
            "Inference seconds per second of audio, per decode",
            ["model"],
            buckets=RTF_BUCKETS,
            registry=reg,
        )
        self.cancelled = Counter(
            "whisper_cancelled_decodes",
            "Decodes stopped early because their client went away",
            ["model"],
            registry=reg,
        )
        self.encoder_fallbacks = Counter(
            "whisper_encoder_window_fallbacks",
            "Windows whose fitted (shorter than 30 s) encoder decode looked degenerate and was "
            "decoded again at 30 s (--encoder-window auto)",
            ["model"],
            registry=reg,
        )
        self.model_loads = Counter(
            "whisper_model_loads", "Successful model loads", ["model"], registry=reg
        )
        self.model_load_failures = Counter(
            "whisper_model_load_failures", "Model loads that failed", ["model"], registry=reg
        )
        self.model_unloads = Counter(
            "whisper_model_unloads", "Model unloads (TTL, API or shutdown)", ["model"], registry=reg
        )
        self.model_load_seconds = Gauge(
            "whisper_model_load_seconds",
            "Duration of the model's last successful load",
            ["model"],
            registry=reg,
        )

    def add_live(self, read: Callable[[], Iterable[Metric]]) -> None:
        self.registry.register(_Live(read))

    def on_model_change(self, managed: ManagedModel, what: str) -> None:
        """ModelManager.on_change: count loads, failures and unloads."""
        if what == "loaded":
            self.model_loads.labels(managed.name).inc()
            if managed.load_seconds is not None:
                self.model_load_seconds.labels(managed.name).set(managed.load_seconds)
        elif what == "load_failed":
            self.model_load_failures.labels(managed.name).inc()
        elif what == "unloaded":
            self.model_unloads.labels(managed.name).inc()

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def gauge(name: str, doc: str, label: str, values: dict[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family
