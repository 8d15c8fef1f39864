import Instrumentation
import Synchronization
import Tracing

/// W3C trace context as Taskyard carries it: a `traceparent` string on tasks (as the client sent it), on
/// claims (the attempt's span), on participant calls and on reports. Spans go through swift-distributed-
/// tracing's global tracer: a no-op until `--otel-endpoint` bootstraps an exporter, and then `isEnabled`
/// says so, so that work done only for spans (a span per claimed task) is skipped when nobody collects them.
public enum TraceContext {
    private static let enabled = Atomic<Bool>(false)

    /// True once a tracer that exports is bootstrapped in this process.
    public static var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    /// Called by whoever bootstrapped `InstrumentationSystem` with a tracer that exports.
    public static func markEnabled() { enabled.store(true, ordering: .relaxed) }

    /// A context whose parent span is the one `traceparent` names; the top level when it is nil, malformed,
    /// or tracing is off.
    public static func context(parent traceparent: String?) -> ServiceContext {
        var context = ServiceContext.topLevel
        guard let traceparent, isEnabled else { return context }
        InstrumentationSystem.instrument.extract(["traceparent": traceparent], into: &context, using: DictionaryExtractor())
        return context
    }

    /// The `traceparent` of the span `context` holds; nil when it holds none (tracing off).
    public static func traceparent(of context: ServiceContext) -> String? {
        guard isEnabled else { return nil }
        var carrier: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &carrier, using: DictionaryInjector())
        return carrier["traceparent"]
    }

    /// The `traceparent` of the span the current task runs in, if any.
    public static var current: String? { ServiceContext.current.flatMap(traceparent(of:)) }
}

struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}

struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}

/// A point in time a span started or ended at, for spans timed after the fact (a claim, a report: one
/// statement serves many tasks, and each task's span is made once the statement is done).
public struct TraceInstant: TracerInstant {
    public var nanosecondsSinceEpoch: UInt64

    public static var now: TraceInstant { TraceInstant(nanosecondsSinceEpoch: DefaultTracerClock.now.nanosecondsSinceEpoch) }

    public init(nanosecondsSinceEpoch: UInt64) { self.nanosecondsSinceEpoch = nanosecondsSinceEpoch }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.nanosecondsSinceEpoch < rhs.nanosecondsSinceEpoch }
}
