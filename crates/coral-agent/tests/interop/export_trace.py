"""Exports hand-designed traces with fixed ids to a Coral agent, with the
OpenTelemetry Python SDK and its own OTLP exporters.

Used by crates/coral-cli/tests/traces.rs, which works out by hand what the
colony must answer for these spans (tree, critical path, self times, RED per
operation). Every id, start and end below is fixed; BASE_NS (Unix ns, the
start of an already-closed minute) is the only input, and every span lies in
[BASE_NS, BASE_NS + 60 s).

    python export_trace.py GRPC_ADDR HTTP_ADDR BASE_NS

Service `frontend` goes over OTLP/gRPC, service `cart` over OTLP/HTTP; both
resources carry host.name=web-1. Offsets are ms after BASE_NS.

Trace 0af7651916cd43dd8448eb211c80319c (crosses into Beyla):

    f00d000000000001 frontend SERVER   GET /checkout              0–100  root, status OK
    f00d000000000002 frontend CLIENT   POST /api/checkout        10–90   parent ...0001
    f00d000000000003 frontend CLIENT   GET /api/recommendations  20–60   parent ...0001
    f00d000000000004 frontend INTERNAL render                    92–125  parent ...0001 (outlives it)

  The callee, `checkout`, is instrumented by Beyla only: the test's Beyla
  stand-in scenario continues traceparent
  00-0af7651916cd43dd8448eb211c80319c-f00d000000000002-01 with a SERVER span
  POST /api/checkout 15–85 and its SQL child SELECT orders 35–65.

Trace ca000000000000000000000000000002 (a middle span the agent does not keep):

    ca00000000000001 frontend SERVER   GET /cart              1000–1300  root
    ca00000000000002 frontend CLIENT   GET /api/cart          1100–1105  parent ...0001 (fast, OK)
    ca00000000000003 cart     SERVER   GET /api/cart          1101–1104  parent ...0002, HTTP 500, ERROR

Batch, one span per trace (trace id b0…0<n> / b1…0<n>, span id b0…<n> /
b1…<n>, n from 1), for RED per operation:

    frontend SERVER GET /checkout  from 2000 every 10 ms: 45 × 10 ms, 45 × 20 ms,
                                   6 × 30 ms, 3 × 250 ms (HTTP 500, ERROR)
    frontend SERVER GET /health    from 3500 every 10 ms: 20 × 1 ms, 25 × 2 ms, 5 × 5 ms
"""

import sys

from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

MS = 1_000_000

CHECKOUT_TRACE = 0x0AF7651916CD43DD8448EB211C80319C
CART_TRACE = 0xCA000000000000000000000000000002


class FixedIds(IdGenerator):
    """Hands out the ids set just before each span starts. A child takes its
    parent's trace id; the SDK asks for a trace id only for roots."""

    trace_id = 0
    span_id = 0

    def generate_trace_id(self):
        return self.trace_id

    def generate_span_id(self):
        return self.span_id


class Sender:
    def __init__(self, service, exporter, base_ns):
        self.ids = FixedIds()
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": service, "host.name": "web-1"}),
            id_generator=self.ids,
        )
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("coral-interop")
        self.base_ns = base_ns
        self.service = service

    def span(self, span_id, name, kind, start_ms, end_ms, parent=None, trace_id=None,
             http_status=None, error=False, ok=False):
        """Records one finished span; `parent` is a span from any Sender."""
        self.ids.span_id = span_id
        self.ids.trace_id = trace_id or 0
        context = trace_api.set_span_in_context(parent) if parent is not None else None
        attributes = {}
        if http_status is not None:
            method, _, route = name.partition(" ")
            attributes = {"http.request.method": method, "http.route": route,
                          "http.response.status_code": http_status}
        span = self.tracer.start_span(name, context=context, kind=kind, attributes=attributes,
                                      start_time=self.base_ns + int(start_ms * MS))
        if error:
            span.set_status(Status(StatusCode.ERROR, "boom"))
        elif ok:
            span.set_status(Status(StatusCode.OK))
        span.end(end_time=self.base_ns + int(end_ms * MS))
        return span

    def flush(self):
        if not self.provider.force_flush(30_000):
            sys.exit(f"{self.service}: flush timed out")
        self.provider.shutdown()


def main():
    grpc_addr, http_addr, base_ns = sys.argv[1], sys.argv[2], int(sys.argv[3])
    frontend = Sender("frontend", GrpcExporter(endpoint=f"http://{grpc_addr}", insecure=True), base_ns)
    cart = Sender("cart", HttpExporter(endpoint=f"http://{http_addr}/v1/traces"), base_ns)

    # The trace that continues into the Beyla-instrumented `checkout`.
    root = frontend.span(0xF00D000000000001, "GET /checkout", SpanKind.SERVER, 0, 100,
                         trace_id=CHECKOUT_TRACE, http_status=200, ok=True)
    frontend.span(0xF00D000000000002, "POST /api/checkout", SpanKind.CLIENT, 10, 90, parent=root,
                  http_status=200)
    frontend.span(0xF00D000000000003, "GET /api/recommendations", SpanKind.CLIENT, 20, 60, parent=root,
                  http_status=200)
    frontend.span(0xF00D000000000004, "render", SpanKind.INTERNAL, 92, 125, parent=root)

    # The trace whose middle span the agent's filters drop.
    cart_root = frontend.span(0xCA00000000000001, "GET /cart", SpanKind.SERVER, 1000, 1300,
                              trace_id=CART_TRACE, http_status=200)
    middle = frontend.span(0xCA00000000000002, "GET /api/cart", SpanKind.CLIENT, 1100, 1105,
                           parent=cart_root, http_status=200)
    cart.span(0xCA00000000000003, "GET /api/cart", SpanKind.SERVER, 1101, 1104, parent=middle,
              http_status=500, error=True)

    # RED per operation: single-span traces with known durations.
    checkout = [10] * 45 + [20] * 45 + [30] * 6 + [250] * 3
    for n, ms in enumerate(checkout, start=1):
        start = 2000 + (n - 1) * 10
        error = ms == 250
        frontend.span((0xB0 << 56) | n, "GET /checkout", SpanKind.SERVER, start, start + ms,
                      trace_id=(0xB0 << 120) | n, http_status=500 if error else 200, error=error)
    health = [1] * 20 + [2] * 25 + [5] * 5
    for n, ms in enumerate(health, start=1):
        start = 3500 + (n - 1) * 10
        frontend.span((0xB1 << 56) | n, "GET /health", SpanKind.SERVER, start, start + ms,
                      trace_id=(0xB1 << 120) | n, http_status=200)

    frontend.flush()
    cart.flush()
    print(f"exported {4 + 3 + len(checkout) + len(health)} spans")


if __name__ == "__main__":
    main()
