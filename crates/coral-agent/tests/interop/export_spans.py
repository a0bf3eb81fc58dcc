"""Exports spans to a Coral agent with the OpenTelemetry Python SDK.

Used by crates/coral-agent/tests/python_sdk.rs. For each transport it builds a
TracerProvider with a BatchSpanProcessor and the SDK's own OTLP exporter,
creates COUNT SERVER spans (every 10th an HTTP 500 error), then flushes.

    python export_spans.py GRPC_ADDR HTTP_ADDR COUNT
"""

import sys
import time

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def export(exporter, service, count, start_ns):
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("coral-interop")
    for i in range(1, count + 1):
        error = i % 10 == 0
        begin = start_ns + i * 1_000_000
        span = tracer.start_span(
            "GET /py",
            kind=SpanKind.SERVER,
            start_time=begin,
            attributes={
                "http.request.method": "GET",
                "http.response.status_code": 500 if error else 200,
                "py.ratio": 0.5,
                "py.flag": True,
            },
        )
        if error:
            span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end(end_time=begin + i * 1_000_000)
    if not provider.force_flush(30_000):
        sys.exit(f"{service}: flush timed out")
    provider.shutdown()


def main():
    grpc_addr, http_addr, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # Two minutes ago, aligned: every span lands in one closed minute.
    start_ns = (int(time.time()) // 60 - 2) * 60 * 1_000_000_000
    export(GrpcExporter(endpoint=f"http://{grpc_addr}", insecure=True), "py-grpc", count, start_ns)
    export(HttpExporter(endpoint=f"http://{http_addr}/v1/traces"), "py-http", count, start_ns)
    print("exported")


if __name__ == "__main__":
    main()
