"""`--track otel`: OpenTelemetry spans, one per model call, under one span per run.

The run's span `promptascent.run` carries the run id, task, optimizer and, at the
end, its status; each model call is a child span `promptascent.model_call` with its
role, model, operation, token counts, whether the journal or a cache answered it,
and its error (span status ERROR). The spans are made from the ModelCalled events
with the calls' own start and end times.

Where they go: an application that set an SDK tracer provider (its own OTel set-up)
gets them there. Otherwise this tracker makes a provider for the run from the
standard environment: OTEL_TRACES_EXPORTER (default otlp, over http/protobuf unless
OTEL_EXPORTER_OTLP_PROTOCOL says grpc; console; none; or any exporter installed under
the `opentelemetry_traces_exporter` entry points), which reads its own
OTEL_EXPORTER_OTLP_* variables (endpoint, headers), and OTEL_SERVICE_NAME /
OTEL_RESOURCE_ATTRIBUTES (service name "promptascent" when unset). That provider is
flushed and shut down when the run ends.
"""

from __future__ import annotations

import os
import time
from importlib.metadata import entry_points
from typing import Any

from promptascent.errors import ConfigError
from promptascent.events import ModelCalled
from promptascent.tracking.base import CandidateScore, RunEnd, TrackedRun

_EXPORTERS = "opentelemetry_traces_exporter"  # the SDK's entry point group


class OtelTracker:
    name = "otel"

    def __init__(self) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        provider = trace.get_tracer_provider()
        self._own: Any = None
        if not isinstance(provider, TracerProvider):  # no OTel set-up of the application's
            provider = self._own = _provider_from_environment()
        self.tracer = provider.get_tracer("promptascent")
        self.run_span: Any = None

    def start(self, run: TrackedRun) -> None:
        self.run_span = self.tracer.start_span(
            "promptascent.run",
            attributes={
                "promptascent.run_id": run.run_id,
                "promptascent.task": run.task,
                "promptascent.optimizer": run.params.get("optimizer", ""),
                "promptascent.resumed": run.resumed,
            },
        )

    def record(self, score: CandidateScore) -> None:
        """Scores are not spans; the run span counts nothing per candidate."""

    def model_call(self, call: ModelCalled) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        end = int(call.ts * 1e9)
        span = self.tracer.start_span(
            "promptascent.model_call",
            context=trace.set_span_in_context(self.run_span) if self.run_span else None,
            start_time=end - int(call.seconds * 1e9),
            attributes={
                "promptascent.role": call.role,
                "promptascent.model": call.model,
                "promptascent.operation": call.operation,
                "promptascent.cached": call.cached,
                "promptascent.prompt_tokens": call.prompt_tokens,
                "promptascent.completion_tokens": call.completion_tokens,
                "promptascent.seconds": call.seconds,
            },
        )
        if call.error is not None:
            span.set_attribute("promptascent.error", call.error)
            span.set_status(Status(StatusCode.ERROR, call.error))
        span.end(end_time=end)

    def finish(self, end: RunEnd) -> None:
        from opentelemetry.trace import Status, StatusCode

        try:
            if self.run_span is not None:
                self.run_span.set_attribute("promptascent.status", end.status)
                if end.result is not None:
                    self.run_span.set_attribute(
                        "promptascent.best_candidate", str(end.result.get("best_candidate"))
                    )
                if end.status == "failed":
                    self.run_span.set_status(Status(StatusCode.ERROR, "the run failed"))
                self.run_span.end(end_time=time.time_ns())
        finally:
            if self._own is not None:
                self._own.shutdown()  # flushes the batch processor


def _provider_from_environment() -> Any:
    """A tracer provider exporting as OTEL_TRACES_EXPORTER says (OpenTelemetry's
    environment variables; its default exporter is otlp)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "promptascent"}
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in exporter_names():
        exporter = next(iter(entry_points(group=_EXPORTERS, name=_entry_point(name)))).load()()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def check_exporters() -> None:
    """ConfigError when the spans would go to an exporter that is not installed."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        exporter_names()


def exporter_names() -> list[str]:
    """The exporters OTEL_TRACES_EXPORTER names (default otlp; none: no exporter);
    ConfigError for one that is not installed."""
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    names = [n for n in names if n and n != "none"]
    for name in names:
        if not entry_points(group=_EXPORTERS, name=_entry_point(name)):
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER: no OpenTelemetry exporter {name!r} is installed "
                "(otlp: pip install 'promptascent[otel]'; or console, or none)"
            )
    return names


def _entry_point(name: str) -> str:
    """OTEL_TRACES_EXPORTER's otlp is the exporter of the OTLP protocol chosen by
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL (the
    specification's default: http/protobuf; grpc needs its own exporter package)."""
    if name != "otlp":
        return name
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    return "otlp_proto_grpc" if protocol == "grpc" else "otlp_proto_http"
