"""A small OTLP/HTTP receiver for the tracing test: takes `POST /v1/traces` (protobuf, as OpenTelemetry's
exporters send it), answers as a collector does, and appends each span it gets to a file as one JSON line:
the service that sent it, its trace, span and parent ids (hex), name, kind and attributes.

Usage: python3 otlp_receiver.py --port PORT --out FILE   (listens on 127.0.0.1 only; stop it with SIGTERM)
With --discard it answers without reading the spans (what a bench that measures the exporters wants: the
receiver's own work is not theirs), counting requests and bytes into FILE at exit.
Needs `opentelemetry-proto` from PyPI.
"""
import argparse
import gzip
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


def value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Receiver(BaseHTTPRequestHandler):
    out = None
    discard = False
    requests = 0
    received_bytes = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if Receiver.discard:
            Receiver.requests += 1
            Receiver.received_bytes += len(body)
            self.answer()
            return
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        lines = []
        for resource_spans in request.resource_spans:
            service = next((value(a.value) for a in resource_spans.resource.attributes if a.key == "service.name"), None)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    lines.append(json.dumps({
                        "service": service, "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(), "name": span.name, "kind": span.kind,
                        "attributes": {a.key: value(a.value) for a in span.attributes},
                        "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                        "status": span.status.code,
                    }))
        with open(Receiver.out, "a") as out:
            for line in lines:
                out.write(line + "\n")
        self.answer()

    def answer(self):
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *arguments):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--discard", action="store_true")
    arguments = parser.parse_args()
    Receiver.out = arguments.out
    Receiver.discard = arguments.discard
    server = ThreadingHTTPServer(("127.0.0.1", arguments.port), Receiver)

    def stop(*_):
        if Receiver.discard:
            with open(Receiver.out, "w") as out:
                out.write(f"{Receiver.requests} requests, {Receiver.received_bytes} bytes\n")
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
