import Foundation
import Logging
import TaskyardDomain
import TaskyardStore

/// Keeps the charts' buckets (`GET …/stats`): each run counts the tasks finished since the last (read from
/// the change feed, each cluster from its own position, so a transaction that commits late is counted once
/// and every replica charts the same), samples the live counts, and forgets buckets past `keep`.
public struct StatsRollup: MaintenanceDuty {
    public struct Configuration: MaintenanceDutyConfiguration {
        /// How often finished tasks are counted and the queue is sampled: how far behind the charts are.
        /// Default 2 s; zero runs no rollup (the charts stay empty).
        public var interval: Duration = .seconds(2)
        /// Finished tasks read a page, and pages a run at most (the rest wait for the next run).
        public var pageSize = 5000
        public var pagesPerRun = 20
        /// Buckets older than this are forgotten. Default 8 days: the longest window, 7 days, and a margin.
        public var keep: Duration = .seconds(8 * 86_400)
        public init() {}
    }

    public let name = "stats rollup"
    public let configuration: Configuration

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public func run(_ context: MaintenanceContext) async throws {
        let stats = context.store.stats
        for (cluster, start) in try await stats.positions() {
            var position = start
            for _ in 0..<configuration.pagesPerRun {
                let (finishes, next) = try await stats.finished(cluster: cluster, after: position, limit: configuration.pageSize)
                guard next != position else { break }
                // Moved meanwhile (another leader for a moment): it counted these; the next run goes on from there.
                guard try await stats.record(StatsBucket.rollUp(finishes), cluster: cluster, from: position, next: next) else { break }
                position = next
                if finishes.count < configuration.pageSize { break }
            }
        }
        try await stats.sampleDepth()
        try await stats.prune(before: Date() - configuration.keep.inSeconds)
    }
}
