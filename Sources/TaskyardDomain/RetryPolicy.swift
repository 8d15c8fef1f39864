import Foundation

/// The wait before a failed attempt runs again: base × 2^(attempt − 1), capped, and jittered down by up to
/// half so that tasks failing together do not retry together. The jitter is a value of its own so that a
/// test can fix it.
public struct RetryPolicy: Sendable {
    /// Seconds. Default 2 s.
    public var baseSeconds = 2.0
    /// Seconds. Default 300 s: a failing dependency gets minutes to recover, not hours.
    public var capSeconds = 300.0
    /// A number from the range: the fraction of the capped wait that is waited.
    public var jitter: @Sendable (ClosedRange<Double>) -> Double = { Double.random(in: $0) }

    public init(baseSeconds: Double = 2.0, capSeconds: Double = 300.0) {
        self.baseSeconds = baseSeconds
        self.capSeconds = capSeconds
    }

    /// Seconds to wait before the attempt after `attempt` (1 or more).
    public func delay(afterAttempt attempt: Int) -> Double {
        let exponential = baseSeconds * pow(2, Double(max(0, min(attempt - 1, 30))))
        return min(capSeconds, exponential) * jitter(0.5...1.0)
    }
}
