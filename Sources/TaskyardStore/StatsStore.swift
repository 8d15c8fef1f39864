import Foundation
import Postgres
import TaskyardDomain

/// The charts' minutes (`task_stats`, migration 0026): kept by the maintenance leader's `StatsRollup`,
/// read by `GET …/stats`.
public struct StatsStore: Sendable, TaskStorePart {
    let context: StoreContext

    /// Every cluster with where its rollup stands in the change feed.
    public func positions() async throws -> [(cluster: String, position: ChangeCursor)] {
        try await pool.query(StatsSQL.positions).map { row throws(PostgresError) in
            let xid: String = try row.decode("cursor_xid")
            return (try row.decode("cluster_id"), ChangeCursor(transaction: UInt64(xid) ?? 0, event: try row.decode("cursor_event")))
        }
    }

    /// Up to `limit` of the cluster's tasks finished after `position`, and where the next read starts.
    public func finished(cluster: String, after position: ChangeCursor, limit: Int) async throws -> (finishes: [StatsBucket.Finish], next: ChangeCursor) {
        let rows = try await pool.query(StatsSQL.finished, [cluster, String(position.transaction), position.event, limit])
        let page = try TaskReads.changePage(rows, from: position, rowLimit: limit)
        var finishes: [StatsBucket.Finish] = []
        finishes.reserveCapacity(page.changes.count)
        for row in rows {
            guard let state: String = try row.decode("to_state"), let finalState = TaskState(rawValue: state) else { continue }
            finishes.append(StatsBucket.Finish(
                state: finalState, at: try row.decode("at"), type: try row.decode("task_type"), node: try row.decode("task_node"),
                pickupMilliseconds: try row.decode("pickup_ms"), runMilliseconds: try row.decode("run_ms")))
        }
        return (finishes, page.next)
    }

    /// Adds `buckets` to the cluster's rows and moves its position from `from` to `next`; false (nothing
    /// added) when another leader moved it meanwhile.
    public func record(_ buckets: [StatsBucket], cluster: String, from: ChangeCursor, next: ChangeCursor) async throws -> Bool {
        let literal = { (histogram: StatsHistogram) in "{\(histogram.counts.map(String.init).joined(separator: ","))}" }
        let row = try await pool.query(StatsSQL.record, [
            cluster, String(from.transaction), from.event, String(next.transaction), next.event,
            buckets.map(\.scope.key.scope), buckets.map(\.scope.key.name), buckets.map(\.start),
            buckets.map(\.completed), buckets.map(\.failed), buckets.map(\.cancelled),
            buckets.map { literal($0.pickup) }, buckets.map { literal($0.run) }, buckets.map(\.grain.rawValue),
        ]).single()
        return try row.decode("moved")
    }

    /// Counts the live tasks into this minute's and this hour's rows (each keeps its most).
    public func sampleDepth() async throws {
        _ = try await pool.query(StatsSQL.sampleDepth)
    }

    /// Forgets the buckets that start before `date`.
    public func prune(before date: Date) async throws {
        _ = try await pool.query(StatsSQL.prune, [date])
    }

    /// The cluster's buckets of `scope` and `grain` that start in [from, until), oldest first; 404 for an
    /// unknown cluster.
    public func buckets(cluster: String, scope: StatsScope, grain: StatsBucket.Grain, from: Date, until: Date) async throws -> [StatsBucket] {
        try await pool.withConnection { connection in
            try Self.requireCluster(cluster, on: connection)
            let (scopeName, name) = scope.key
            return try connection.query(StatsSQL.buckets, [cluster, scopeName, name, grain.rawValue, from, until]).map { row throws(PostgresError) in
                var bucket = StatsBucket(scope: scope, grain: grain, start: try row.decode("start"))
                bucket.completed = try row.decode("completed")
                bucket.failed = try row.decode("failed")
                bucket.cancelled = try row.decode("cancelled")
                bucket.queued = try row.decode("queued")
                bucket.received = try row.decode("received")
                bucket.pickup = StatsHistogram(counts: try row.decode("pickup"))
                bucket.run = StatsHistogram(counts: try row.decode("run"))
                return bucket
            }
        }
    }

    /// The points of `window` as of `now` for `scope`, read in the coarsest grain its steps hold whole.
    public func series(cluster: String, scope: StatsScope, window: StatsWindow, now: Date = Date()) async throws -> [StatsPoint] {
        let starts = window.starts(now: now)
        let buckets = try await buckets(cluster: cluster, scope: scope, grain: .reading(step: window.step), from: starts[0],
                                        until: starts[starts.count - 1] + window.step.inSeconds)
        return StatsPoint.series(buckets, window: window, now: now)
    }
}
