import Foundation

/// The wait before a failed attempt runs again: base × 2^(attempt − 1), capped, and jittered down by up to
/// half so that tasks failing together do not retry together. The jitter is a value of its own so that a
/// test can fix it.
public struct RetryPolicy: Sendable {
    /// Default 2 s.
    public var base: Duration = .seconds(2)
    /// Default 300 s: a failing dependency gets minutes to recover, not hours.
    public var cap: Duration = .seconds(300)
    /// A number from the range: the fraction of the capped wait that is waited.
    public var jitter: @Sendable (ClosedRange<Double>) -> Double = { Double.random(in: $0) }

    public init(base: Duration = .seconds(2), cap: Duration = .seconds(300)) {
        self.base = base
        self.cap = cap
    }

    /// The wait before the attempt after `attempt` (1 or more).
    public func delay(afterAttempt attempt: Int) -> Duration {
        let exponential = base.inSeconds * pow(2, Double(max(0, min(attempt - 1, 30))))
        return .seconds(min(cap.inSeconds, exponential) * jitter(0.5...1.0))
    }
}
