#!/usr/bin/env python3
"""Capture real OpenTelemetry Python SDK exports as fuzz seeds.

Starts an HTTP server on 127.0.0.1, points the SDK's OTLP/HTTP protobuf
exporters (traces, metrics, logs) at it, emits a little of each (HTTP and
database spans with attributes of every type, events, links, an error status;
a counter and a histogram; log records), and writes every request body it
receives into OUT/<signal>-<n>.pb, and each trace body also as OTLP/JSON
(ids in hex, as OTLP/JSON writes them) into OUT/traces-<n>.json.

    python capture_sdk.py OUT_DIR
"""

import base64
import http.server
import json
import logging
import sys
import threading
from pathlib import Path

from google.protobuf import json_format
from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

OUT = Path(sys.argv[1])
OUT.mkdir(parents=True, exist_ok=True)
counts = {}


def hex_ids(value):
    """OTLP/JSON writes trace and span ids as hex, not protobuf JSON's base64."""
    if isinstance(value, dict):
        for key, child in value.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(child, str):
                value[key] = base64.b64decode(child).hex()
            else:
                hex_ids(child)
    elif isinstance(value, list):
        for child in value:
            hex_ids(child)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        signal = self.path.rsplit("/", 1)[-1]
        n = counts.get(signal, 0)
        counts[signal] = n + 1
        (OUT / f"{signal}-{n}.pb").write_bytes(body)
        if signal == "traces":
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            doc = json_format.MessageToDict(request)
            hex_ids(doc)
            (OUT / f"traces-{n}.json").write_text(json.dumps(doc))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_port}"
resource = Resource.create({"service.name": "checkout", "service.version": "1.4.2",
                            "k8s.pod.name": "checkout-7d9f", "host.name": "node-a"})

tp = TracerProvider(resource=resource)
tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
tracer = tp.get_tracer("seed")
with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER, attributes={
    "http.request.method": "POST", "http.route": "/checkout", "http.response.status_code": 200,
    "retry": False, "ratio": 0.25, "tags": ["a", "b"], "sizes": [1, 2, 3]}) as root:
    root.add_event("cart loaded", {"items": 3})
    with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT, attributes={
            "db.system": "postgresql", "db.statement": "SELECT * FROM orders WHERE id = 42"}):
        pass
    with tracer.start_as_current_span("POST /charge", kind=SpanKind.CLIENT,
                                      links=[Link(root.get_span_context())]) as child:
        child.set_attribute("http.status_code", "503")
        child.set_status(Status(StatusCode.ERROR, "payments unavailable"))
tp.shutdown()

reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics"))
mp = MeterProvider(resource=resource, metric_readers=[reader])
meter = mp.get_meter("seed")
requests = meter.create_counter("http.server.requests")
duration = meter.create_histogram("http.server.request.duration", unit="s")
for i in range(20):
    requests.add(1, {"http.route": "/checkout", "http.response.status_code": 200 if i % 5 else 500})
    duration.record(0.005 * (i + 1), {"http.route": "/checkout"})
mp.shutdown()

lp = LoggerProvider(resource=resource)
lp.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{base}/v1/logs")))
set_logger_provider(lp)
log = logging.getLogger("seed")
log.addHandler(LoggingHandler(logger_provider=lp))
log.setLevel(logging.INFO)
log.info("order %s placed", 42)
log.error("payment failed", extra={"order.id": 42})
lp.shutdown()
server.shutdown()
print(" ".join(f"{k}={v}" for k, v in sorted(counts.items())))
