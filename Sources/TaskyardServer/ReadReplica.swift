import Foundation
import Logging
import Postgres
import ServiceLifecycle
import Synchronization
import TaskyardDomain
import TaskyardStore

/// History reads sent to a streaming standby (`serve --read-database-url`): task lists, a task with its
/// children, participants, events and trees, and the live counts of `/metrics`. Each is read there only while the standby is fresh — its
/// replay at most `maximumLag` behind, as last checked (every `checkInterval`) — and only for a caller
/// that has not written in the last `maximumLag`, so a client reads its own submit, cancel or retry back
/// from the primary. Everything else — writes, polls, reports, waits, the change feed — goes to the primary.
public final class ReadReplica: Service, Sendable {
    public struct Configuration: Sendable {
        public var database: PostgresConfiguration
        /// A standby further behind than this is skipped for the primary. Default 2 s.
        public var maximumLag: Duration = .seconds(2)
        /// How often the standby's lag is read. Default 250 ms.
        public var checkInterval: Duration = .milliseconds(250)
        /// Connections to the standby at most. Default 10.
        public var poolSize = 10

        public init(database: PostgresConfiguration) {
            self.database = database
        }
    }

    let configuration: Configuration
    private let store: TaskStore
    private let logger: Logger
    /// When the standby was last found fresh; nil while it is not.
    private let freshAt = Mutex<ContinuousClock.Instant?>(nil)
    /// Each token's last write through this server.
    private let lastWrites = Mutex<[Int64: ContinuousClock.Instant]>([:])

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        store = TaskStore.standby(database: configuration.database, poolSize: configuration.poolSize)
        self.logger = logger
    }

    /// True while reads go to the standby (for a caller that has not written lately).
    public var isFresh: Bool {
        guard let at = freshAt.withLock({ $0 }) else { return false }
        // A verdict older than two checks is no verdict: the standby may have stopped answering.
        return at.duration(to: .now) <= configuration.checkInterval * 2 + .milliseconds(100)
    }

    /// Where `caller`'s history read goes: the standby's reads, or `primary` when the standby lags or the
    /// caller wrote within the bound.
    func reads(for caller: APIToken?, primary: TaskReads) -> TaskReads {
        guard isFresh else { return primary }
        if let caller, let wrote = lastWrites.withLock({ $0[caller.id] }), wrote.duration(to: .now) <= configuration.maximumLag {
            return primary
        }
        return store.reads
    }

    /// `caller` wrote (any request but a GET): its reads go to the primary for `maximumLag`.
    func wrote(_ caller: APIToken) {
        let now = ContinuousClock.now
        lastWrites.withLock { writes in
            writes[caller.id] = now
            // Forget the writes that no longer matter, now and then.
            if writes.count > 10_000 { writes = writes.filter { $0.value.duration(to: now) <= self.configuration.maximumLag } }
        }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var wasFresh = false
            while !Task.isCancelled {
                var fresh = false
                do {
                    let lag = try await self.store.replayLag()
                    fresh = lag.map { $0 <= self.configuration.maximumLag.inSeconds } ?? false
                } catch {
                    fresh = false
                }
                self.freshAt.withLock { $0 = fresh ? .now : nil }
                if fresh != wasFresh {
                    self.logger.info(fresh ? "history reads go to the standby" : "history reads go to the primary: the standby lags or cannot be read")
                    wasFresh = fresh
                }
                try? await Task.sleep(for: self.configuration.checkInterval)
            }
        }
        await store.close()
    }
}
