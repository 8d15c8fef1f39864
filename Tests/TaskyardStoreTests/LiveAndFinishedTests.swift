import Foundation
import Postgres
import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

/// `tasks` is partitioned by state: a live task's row is in `tasks_live`, a finished one's in
/// `tasks_finished`, and the transitions move it.
@Suite("Live queue and finished history apart")
struct LiveAndFinishedTests {
    static func side(_ store: TaskStore, _ id: Int64) async throws -> String {
        try await store.pool.withConnection { connection in
            try connection.query("""
                SELECT (SELECT a::regclass::text FROM pg_partition_ancestors(tableoid) a
                         WHERE a IN ('tasks_live'::regclass, 'tasks_finished'::regclass)) AS side
                  FROM tasks WHERE id = $1
                """, [id]).single().decode("side")
        }
    }

    @Test("a task's row moves to the finished side when it ends and back when it is retried; ids stay unique")
    func rowsMove() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let task = try await store.submissions.submit(on: ["n1"])
            #expect(try await Self.side(store, task.id) == "tasks_live")
            let claimed = try #require(try await store.queue.claimOne())
            #expect(try await Self.side(store, task.id) == "tasks_live")
            let failed = try await store.queue.report(TaskReport(attempt: claimed.attempt, lease: claimed.lease, state: .failed, error: "x"),
                                                cluster: TaskStore.cluster, node: "n1", taskID: task.id)
            #expect(failed.state == .queued, "attempts left: back to the queue, still live")
            #expect(try await Self.side(store, task.id) == "tasks_live")
            let cancelled = try await store.submissions.cancel(cluster: TaskStore.cluster, taskID: task.id)
            #expect(cancelled.state == .cancelled)
            #expect(try await Self.side(store, task.id) == "tasks_finished")
            let retried = try await store.submissions.retry(cluster: TaskStore.cluster, taskID: task.id)
            #expect(retried.state == .queued)
            #expect(try await Self.side(store, task.id) == "tasks_live")
            #expect(try await store.reads.events(of: task).map(\.to) == [.queued, .received, .queued, .cancelled, .queued])

            let others = try await store.submissions.submit(batch: (0..<50).map { _ in TaskSubmission(type: "noop", participatingNodes: ["n2"]) },
                                                cluster: TaskStore.cluster)
            let ids = [task.id] + others.map(\.task.id)
            #expect(Set(ids).count == ids.count && ids == ids.sorted())
            // Claimed again: its participant runs in the new attempt, whatever earlier attempts recorded.
            let again = try #require(try await store.queue.claimOne())
            #expect(again.id == task.id && again.attempt == 2)
            #expect(again.task.participantViews.map(\.state) == [.running] && again.task.participantViews.map(\.attempt) == [2])
        }
    }

    @Test("an idempotency key stays taken when its task has finished, and is freed when the task is deleted")
    func keysSpanBothSides() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let keyed = TaskSubmission(type: "noop", participatingNodes: ["n1"], idempotencyKey: "nightly-1")
            let first = try await store.submissions.submit(keyed, cluster: TaskStore.cluster)
            #expect(first.created)
            let claimed = try #require(try await store.queue.claimOne())
            _ = try await store.queue.report(TaskReport(attempt: claimed.attempt, lease: claimed.lease, state: .completed),
                                       cluster: TaskStore.cluster, node: "n1", taskID: first.task.id)
            #expect(try await Self.side(store, first.task.id) == "tasks_finished")
            let again = try await store.submissions.submit(keyed, cluster: TaskStore.cluster)
            #expect(!again.created && again.task.id == first.task.id && again.task.state == .completed)
            let batch = try await store.submissions.submit(batch: [keyed], cluster: TaskStore.cluster)
            #expect(batch.map(\.created) == [false] && batch.map(\.task.id) == [first.task.id])

            try await store.submissions.delete(cluster: TaskStore.cluster, taskID: first.task.id)
            let fresh = try await store.submissions.submit(keyed, cluster: TaskStore.cluster)
            #expect(fresh.created && fresh.task.id > first.task.id)
        }
    }
}
