import Postgres
import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

@Suite("Retention")
struct RetentionTests {
    let cluster = TaskStore.cluster

    /// A root task finished `daysAgo` days ago in `state`, with an outcome per participant.
    func finishedTree(_ store: TaskStore, state: ReportedState, daysAgo: Int, node: String = "n1") async throws -> TaskRecord {
        let task = try await store.submit(TaskSubmission(type: "noop", participatingNodes: [node, "n3"], maxAttempts: 1), cluster: cluster).task
        let claimed = try #require(try await store.claimOne(node))
        #expect(claimed.id == task.id)
        _ = try await store.report(TaskReport(attempt: 1, lease: claimed.lease, state: state, participants: [
            ParticipantOutcome(node: node, state: state), ParticipantOutcome(node: "n3", state: state),
        ]), cluster: cluster, node: node, taskID: task.id)
        try await age(store, task.id, daysAgo: daysAgo)
        return task
    }

    func age(_ store: TaskStore, _ id: Int64, daysAgo: Int) async throws {
        try await store.pool.withConnection { connection in
            try connection.query("UPDATE tasks SET finished_at = now() - make_interval(days => $2::int) WHERE id = $1", [id, daysAgo])
        }
    }

    func rootIDs(_ store: TaskStore) async throws -> [Int64] {
        try await store.tasks(cluster: cluster, filter: TaskFilter(parent: .roots, includeInternal: true)).tasks.map(\.id)
    }

    /// The rows a tree leaves: its tasks (the root and its sub-tasks), their events and participant outcomes.
    func rows(_ store: TaskStore, of id: Int64) async throws -> (tasks: Int, events: Int, outcomes: Int) {
        try await store.pool.withConnection { connection in
            let tasks: Int = try connection.query("SELECT count(*) AS n FROM tasks WHERE id = $1 OR parent_id = $1", [id]).single().decode("n")
            let events: Int = try connection.query("""
                SELECT count(*) AS n FROM task_events e
                 WHERE e.task_id = $1 OR e.task_id IN (SELECT id FROM tasks WHERE parent_id = $1)
                """, [id]).single().decode("n")
            let outcomes: Int = try connection.query("""
                SELECT count(*) AS n FROM task_participants p
                 WHERE p.task_id = $1 OR p.task_id IN (SELECT id FROM tasks WHERE parent_id = $1)
                """, [id]).single().decode("n")
            return (tasks, events, outcomes)
        }
    }

    @Test("deletes exactly the finished trees older than the cut-off, with their sub-tasks, events and outcomes, and nothing else")
    func exactCutOff() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let oldCompleted = try await finishedTree(store, state: .completed, daysAgo: 10)
            let oldFailed = try await finishedTree(store, state: .failed, daysAgo: 9)
            let recent = try await finishedTree(store, state: .completed, daysAgo: 1)
            let live = try await store.submit(on: ["n2"])
            // A finished root whose sub-task still runs: the tree stays.
            let busy = try await store.submit(on: ["n1"])
            let running = try await store.submit(TaskSubmission(type: "noop", participatingNodes: ["n2"], parentID: busy.id), cluster: cluster).task
            let claim = try #require(try await store.claimOne("n1"))
            _ = try await store.report(TaskReport(attempt: 1, lease: claim.lease, state: .completed), cluster: cluster, node: "n1", taskID: busy.id)
            try await age(store, busy.id, daysAgo: 30)
            #expect(try await rows(store, of: oldCompleted.id) == (1, 3, 2))

            let byState = try await store.pruneFinished(olderThan: 7 * 86_400, states: [.failed])
            #expect(byState == 1)
            #expect(try await rootIDs(store) == [oldCompleted.id, recent.id, live.id, busy.id])

            let deleted = try await store.pruneFinished(olderThan: 7 * 86_400)
            #expect(deleted == 1)
            #expect(try await rootIDs(store) == [recent.id, live.id, busy.id])
            #expect(try await rows(store, of: oldCompleted.id) == (0, 0, 0), "events and outcomes go with the root")
            #expect(try await rows(store, of: oldFailed.id) == (0, 0, 0))
            #expect(try await store.reload(running).state == .queued)
            #expect(try await store.pruneFinished(olderThan: 7 * 86_400) == 0, "reading or pruning again removes nothing more")
            let orphans: Int = try await store.pool.withConnection { connection in
                try connection.query("""
                    SELECT count(*) AS n FROM task_events e
                     WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.cluster_id = e.cluster_id AND t.id = e.task_id)
                    """).single().decode("n")
            }
            #expect(orphans == 0, "no event outlives its task")
        }
    }

    @Test("large prunes go in batches")
    func batches() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            for _ in 0..<5 { _ = try await finishedTree(store, state: .completed, daysAgo: 40) }
            #expect(try await store.pruneFinished(olderThan: 86_400, limit: 2) == 2)
            #expect(try await store.pruneFinished(olderThan: 86_400, limit: 2) == 2)
            #expect(try await store.pruneFinished(olderThan: 86_400, limit: 2) == 1)
            #expect(try await rootIDs(store).isEmpty)
        }
    }
}
