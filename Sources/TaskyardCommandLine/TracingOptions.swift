import ArgumentParser
import Foundation
import Instrumentation
import OTel
import ServiceLifecycle
import TaskyardTracing

/// `--otel-endpoint`: spans of submits, claims, task attempts, participant calls, handler runs and reports,
/// exported over OTLP/HTTP (protobuf). Off by default: then the tracing calls in the code are no-ops.
public struct TracingOptions: ParsableArguments {
    public init() {}

    @Option(help: ArgumentHelp("OTLP/HTTP endpoint to send spans to, e.g. http://127.0.0.1:4318/v1/traces (an OpenTelemetry Collector, Jaeger, Tempo). Default: $TASKYARD_OTEL_ENDPOINT, else no spans are made.", valueName: "url"))
    public var otelEndpoint: String?

    /// The exporter's service (to run first and stop last) when an endpoint is given; none otherwise. Call
    /// once per process: the tracer is global.
    public func services(serviceName: String) throws -> [any Service] {
        guard let endpoint = setting(otelEndpoint, "TASKYARD_OTEL_ENDPOINT") else { return [] }
        guard let url = URL(string: endpoint), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
            throw ValidationError("--otel-endpoint takes an http or https URL, e.g. http://127.0.0.1:4318/v1/traces (got \(endpoint))")
        }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.otlpExporter.endpoint = endpoint
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        // Spans leave within a second: a trace is whole in the backend soon after the task ends.
        configuration.traces.batchSpanProcessor.scheduleDelay = .seconds(1)
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        InstrumentationSystem.bootstrap(backend.factory)
        TraceContext.markEnabled()
        return [backend.service]
    }
}
