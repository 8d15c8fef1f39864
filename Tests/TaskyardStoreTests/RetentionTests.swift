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
        let task = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: [node, "n3"], maxAttempts: 1), cluster: cluster).task
        let claimed = try #require(try await store.queue.claimOne(node))
        #expect(claimed.id == task.id)
        _ = try await store.queue.report(TaskReport(attempt: 1, lease: claimed.lease, state: state, participants: [
            ParticipantOutcome(node: node, state: state), ParticipantOutcome(node: "n3", state: state),
        ]), cluster: cluster, node: node, taskID: task.id)
        try await age(store, task.id, daysAgo: daysAgo)
        return task
    }

    func age(_ store: TaskStore, _ id: Int64, daysAgo: Int) async throws {
        try await store.backdateFinish(of: id, by: .seconds(daysAgo * 86_400))
    }

    func rootIDs(_ store: TaskStore) async throws -> [Int64] {
        try await store.reads.tasks(cluster: cluster, filter: TaskFilter(parent: .roots, includeInternal: true)).tasks.map(\.id)
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
            let live = try await store.submissions.submit(on: ["n2"])
            // A finished root whose sub-task still runs: the tree stays.
            let busy = try await store.submissions.submit(on: ["n1"])
            let running = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n2"], parentID: busy.id), cluster: cluster).task
            let claim = try #require(try await store.queue.claimOne("n1"))
            _ = try await store.queue.report(TaskReport(attempt: 1, lease: claim.lease, state: .completed), cluster: cluster, node: "n1", taskID: busy.id)
            try await age(store, busy.id, daysAgo: 30)
            #expect(try await rows(store, of: oldCompleted.id) == (1, 3, 2))

            let byState = try await store.maintenance.pruneFinished(olderThan: .seconds(7 * 86_400), states: [.failed])
            #expect(byState == 1)
            #expect(try await rootIDs(store) == [oldCompleted.id, recent.id, live.id, busy.id])

            let deleted = try await store.maintenance.pruneFinished(olderThan: .seconds(7 * 86_400))
            #expect(deleted == 1)
            #expect(try await rootIDs(store) == [recent.id, live.id, busy.id])
            #expect(try await rows(store, of: oldCompleted.id) == (0, 0, 0), "events and outcomes go with the root")
            #expect(try await rows(store, of: oldFailed.id) == (0, 0, 0))
            #expect(try await store.reads.reload(running).state == .queued)
            #expect(try await store.maintenance.pruneFinished(olderThan: .seconds(7 * 86_400)) == 0, "reading or pruning again removes nothing more")
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
            #expect(try await store.maintenance.pruneFinished(olderThan: .seconds(86_400), limit: 2) == 2)
            #expect(try await store.maintenance.pruneFinished(olderThan: .seconds(86_400), limit: 2) == 2)
            #expect(try await store.maintenance.pruneFinished(olderThan: .seconds(86_400), limit: 2) == 1)
            #expect(try await rootIDs(store).isEmpty)
        }
    }

    /// Claims every queued task of n1 in id order and completes it, but leaves those in `holding` received;
    /// returns their claims.
    @discardableResult
    func finishAll(_ store: TaskStore, holding: Set<Int64> = []) async throws -> [ClaimedTask] {
        var held: [ClaimedTask] = []
        while let claim = try await store.queue.claimOne("n1") {
            if holding.contains(claim.task.id) { held.append(claim); continue }
            try await complete(store, claim)
        }
        return held
    }

    func complete(_ store: TaskStore, _ claim: ClaimedTask) async throws {
        _ = try await store.queue.report(TaskReport(attempt: claim.task.attempt, lease: claim.lease, state: .completed, participants: [
            ParticipantOutcome(node: "n1", state: .completed), ParticipantOutcome(node: "n2", state: .completed),
        ]), cluster: cluster, node: "n1", taskID: claim.task.id)
    }

    func count(_ store: TaskStore, _ sql: String) async throws -> Int {
        try await store.pool.withConnection { connection in try connection.query(sql).single().decode("n") }
    }

    func backdateFinished(_ store: TaskStore) async throws {
        try await store.backdateAllFinished(by: .seconds(10 * 86_400))
    }

    @Test("retention drops a whole range of ids — tasks, events, outcomes, idempotency keys and the later members of its trees — once none of it is live")
    func rangeDrops() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            // Ranges of four ids from the first one: drop the empty ranges the migration made, make small ones.
            try await store.pool.withConnection { connection in
                for range in try connection.query("SELECT lower_id FROM history_partitions WHERE lower_id > 0") {
                    try connection.query("SELECT taskyard_drop_history_partition($1)", [try range.decode("lower_id", as: Int64.self)])
                }
            }
            var ranges = MaintenanceStore.HistoryRanges(retention: .seconds(30 * 86_400))
            ranges.minimumSpan = 4
            ranges.rangesAhead = 3
            #expect(try await store.maintenance.extendHistory(ranges) == 3)
            #expect(Array(try await store.maintenance.historyRanges().dropFirst()) == [1..<5, 5..<9, 9..<13])

            func submit(parent: Int64? = nil, key: String? = nil) async throws -> Int64 {
                try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1", "n2"], parentID: parent,
                                                      idempotencyKey: key), cluster: cluster).task.id
            }
            let root1 = try await submit()
            let child1 = try await submit(parent: root1)
            let keyed = try await submit(key: "nightly")
            let root2 = try await submit()
            let child2 = try await submit(parent: root2)
            let later = try await submit()
            #expect([root1, child1, keyed, root2, child2, later] == Array(1...6))
            #expect(try await count(store, "SELECT count(*) AS n FROM task_events_1") == 4, "each event lands in its task's range")

            let held = try await finishAll(store, holding: [keyed])
            try await backdateFinished(store)
            #expect(try await count(store, "SELECT count(*) AS n FROM tasks_finished_5") == 2)
            #expect(try await count(store, "SELECT count(*) AS n FROM task_participants_1") == 6)
            #expect(try await store.maintenance.retireExpiredHistory(olderThan: .seconds(7 * 86_400)) == [Int64.min],
                    "the empty range below the first id goes; the next holds a task still received")
            #expect(try await count(store, "SELECT count(*) AS n FROM tasks WHERE id < 5") == 4)

            try await complete(store, try #require(held.first))
            try await backdateFinished(store)
            #expect(try await store.maintenance.retireExpiredHistory(olderThan: .seconds(7 * 86_400)) == [1],
                    "the range of ids 1–4 goes; 5–8 stays, its ids not all handed out yet")
            #expect(try await count(store, "SELECT count(*) AS n FROM tasks") == 1, "only the unrelated task 6 is left")
            #expect(try await store.reads.reload(try await store.reads.task(cluster: cluster, id: later)).id == later)
            #expect(try await count(store, "SELECT count(*) AS n FROM task_events WHERE task_id <> 6") == 0)
            #expect(try await count(store, "SELECT count(*) AS n FROM task_participants WHERE task_id <> 6") == 0,
                    "task 5 went with its root, task 4, from the next range")
            #expect(try await count(store, "SELECT count(*) AS n FROM task_participants WHERE task_id = 6") == 2)
            #expect(try await count(store, """
                SELECT count(*) AS n FROM pg_class
                 WHERE relname IN ('tasks_finished_1', 'task_events_1', 'task_participants_1')
                """) == 0, "dropped as tables, not emptied")
            #expect(try await submit(key: "nightly") == 7, "the idempotency key went with its task")
        }
    }

    @Test("ids past every range land in the overflow partitions, and new ranges start above them")
    func overflow() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let top = try #require(try await store.maintenance.historyRanges().last).upperBound
            try await store.pool.withConnection { connection in
                try connection.query("SELECT setval('tasks_id_seq', $1::bigint + 100)", [top])
            }
            let task = try await store.submissions.submit(on: ["n1", "n2"])
            #expect(task.id == top + 101)
            try await finishAll(store)
            #expect(try await count(store, "SELECT count(*) AS n FROM tasks_finished_overflow") == 1)
            #expect(try await count(store, "SELECT count(*) AS n FROM task_events_overflow") == 3)
            var ranges = MaintenanceStore.HistoryRanges(retention: .seconds(30 * 86_400))
            ranges.minimumSpan = 10
            #expect(try await store.maintenance.extendHistory(ranges) >= 1)
            let made = try await store.maintenance.historyRanges().filter { $0.lowerBound >= top }
            #expect(made.first?.lowerBound == task.id + 1, "\(made)")
            #expect(try await store.reads.reload(task).state == .completed, "the task is read from the overflow as from any range")
        }
    }

    @Test("a range drop that cannot have its locks at once leaves the range for the next run, without waiting")
    func dropWaitsForNoOne() async throws {
        try await TestDatabase.withStore { store in
            // A reader in the middle of a transaction on the history (a long report, a psql session).
            let reader = try await PostgresConnection.connect(store.pool.configuration)
            try await reader.perform { connection in
                try connection.execute("BEGIN")
                _ = try connection.query("SELECT count(*) AS n FROM tasks_finished")
            }
            let started = ContinuousClock.now
            #expect(try await store.maintenance.retireExpiredHistory(olderThan: .seconds(86_400)).isEmpty, "the empty first range waits")
            #expect(ContinuousClock.now - started < .seconds(2), "it gave up on the lock at once")
            try await reader.perform { connection in try connection.execute("ROLLBACK") }
            await reader.close()
            #expect(try await store.maintenance.retireExpiredHistory(olderThan: .seconds(86_400)) == [Int64.min], "the next run drops it")
        }
    }
}
