import NIOCore
import NIOPosix

/// Swift concurrency's jobs run on NIO's event loop threads instead of a pool of their own: a request that
/// an event loop read continues on that thread, without a hop to another one and back for its answer.
/// Measured with `taskyard-bench` (interleaved A/B, three runs each, medians, 2026-12-02): bulk 3,716 → 5,197
/// tasks/s with CPU per task on the server 0.139 → 0.117 ms and on the agents 0.128 → 0.106 ms; three
/// participants 931 → 1,032; one POST per task within the spread (523 → 535; 533 → 468 in another round);
/// submit → completed p99 at 250 submits/s 125 → 77 ms. Blocking work never runs
/// on these threads either way: libpq calls have a thread per connection (`ThreadExecutor`).
public enum EventLoopExecutor {
    /// Call first in `main`, before anything has been scheduled.
    public static func install() {
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}
