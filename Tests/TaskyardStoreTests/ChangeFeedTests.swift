import Foundation
import Postgres
import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

/// The change feed's positions: a change whose transaction took its event id before another's and commits
/// after it is still handed out, after the other — never skipped, never twice.
@Suite("The change feed")
struct ChangeFeedTests {
    let cluster = TaskStore.cluster

    @Test("a change committed after a later one is held back until it commits, then handed out first; nothing twice")
    func lateCommit() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let start = try await store.reads.changes(cluster: cluster, after: nil)
            #expect(start.changes.isEmpty, "a feed opened now starts with what comes next")
            let first = try await store.submissions.submit()
            let page1 = try await store.reads.changes(cluster: cluster, after: start.next)
            #expect(page1.changes.map { "\($0.event.taskID) \($0.event.to)" } == ["\(first.id) queued"])

            // A transaction takes an event id and has not committed; another takes a later one and commits.
            let open = try await PostgresConnection.connect(store.database)
            try await open.perform { connection in
                try connection.execute("BEGIN")
                _ = try connection.query("""
                    INSERT INTO task_events (cluster_id, task_id, from_state, to_state, attempt)
                    VALUES ('c1', $1, 'queued', 'cancelled', 0)
                    """, [first.id])
            }
            let second = try await store.submissions.submit()
            let page2 = try await store.reads.changes(cluster: cluster, after: page1.next)
            #expect(page2.changes.isEmpty && page2.held,
                    "the later change waits while the transaction before it runs (an event-id cursor would pass the open one by)")

            try await open.perform { connection in try connection.execute("COMMIT") }
            let page3 = try await store.reads.changes(cluster: cluster, after: page2.next)
            #expect(page3.changes.map { "\($0.event.taskID) \($0.event.to)" } == ["\(first.id) cancelled", "\(second.id) queued"])
            #expect(page3.changes.map(\.cursor) == page3.changes.map(\.cursor).sorted() && page3.changes.allSatisfy { $0.cursor > page1.next })
            #expect(!page3.held)
            let page4 = try await store.reads.changes(cluster: cluster, after: page3.next)
            #expect(page4.changes.isEmpty, "read once")
        }
    }

    @Test("a long backlog comes page by page, in order, each change once")
    func pages() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            var position = try await store.reads.changes(cluster: cluster, after: nil).next
            let tasks = try await store.submissions.submitBatch((0..<25).map { _ in TaskSubmission(type: "noop", participatingNodes: ["n1"]) },
                                                               cluster: cluster)
            var seen: [TaskChange] = []
            while true {
                let page = try await store.reads.changes(cluster: cluster, after: position, limit: 10)
                seen += page.changes
                position = page.next
                if page.changes.count < 10 { break }
            }
            #expect(seen.map(\.event.taskID) == tasks.map(\.id))
            #expect(Set(seen.map(\.cursor)).count == 25 && seen.map(\.cursor) == seen.map(\.cursor).sorted())
            #expect(ChangeCursor(position.description) == position && ChangeCursor("12-x") == nil && ChangeCursor("-1-2") == nil)
        }
    }

    @Test("a read of the feed walks its index from the position, custom and generic plans, over a long history")
    func readsThroughItsIndex() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            try await store.pool.withConnection { connection in
                try connection.query("""
                    INSERT INTO task_events (cluster_id, task_id, from_state, to_state, attempt)
                    SELECT $1, g, NULL, 'queued', 0 FROM generate_series(1, 50000) AS g
                    """, [TaskStore.cluster])
                try connection.execute("ANALYZE task_events")
            }
            let now = try await store.reads.changes(cluster: cluster, after: nil).next
            let plans = try await store.pool.withConnection { connection in
                try connection.transaction { connection in
                    [try connection.explain("task_events.feed", [cluster, String(now.transaction), Int64(0), 500], generic: false),
                     try connection.explain("task_events.feed", [cluster, String(now.transaction), Int64(0), 500], generic: true)]
                }
            }
            for plan in plans {
                // Each partition's part of the feed's index (named after it) — and no table read whole.
                #expect(plan.contains("_cluster_id_xid_id_idx") && !plan.contains("Seq Scan on task_events_1 "), "\(plan)")
            }
        }
    }
}
