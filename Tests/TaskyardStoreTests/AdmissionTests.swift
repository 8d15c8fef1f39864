import Foundation
import Postgres
import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

/// Gang admission and concurrency keys, decided in the claim: a task starts only when every node it runs on
/// has a free slot (and its key has room), and every way out of `received` gives the slots back.
@Suite("Gang admission and concurrency keys")
struct AdmissionTests {
    let cluster = TaskStore.cluster

    /// Per node: its capacity, the slots its row says are taken, and the received tasks that take part in it,
    /// read in one snapshot.
    struct Occupancy: Equatable, CustomStringConvertible {
        var node: String
        var capacity: Int
        var used: Int
        var actual: Int
        var description: String { "\(node): \(actual) of \(capacity) (counted \(used))" }
    }

    static func occupancy(_ store: TaskStore) async throws -> [Occupancy] {
        try await store.pool.withConnection { connection in
            try connection.query("""
                SELECT n.id, n.capacity, s.used,
                       (SELECT count(*) FROM tasks t
                         WHERE t.cluster_id = n.cluster_id AND t.state = 'received'
                           AND n.id = ANY (array_append(coalesce(t.attempt_nodes, t.participating_nodes), t.assigned_node)))::integer AS actual
                  FROM nodes n JOIN admission_slot_counts s ON s.cluster_id = n.cluster_id AND s.kind = 'node' AND s.name = n.id
                 ORDER BY n.id
                """).map { row throws(PostgresError) in
                Occupancy(node: try row.decode("id"), capacity: try row.decode("capacity"), used: try row.decode("used"),
                          actual: try row.decode("actual"))
            }
        }
    }

    /// The slots with returns not yet folded into their rows (`admission_returns`), by name.
    static func unfoldedReturns(_ store: TaskStore) async throws -> [String] {
        try await store.pool.withConnection { connection in
            try connection.query("SELECT DISTINCT name FROM admission_returns ORDER BY name").map { row throws(PostgresError) in
                try row.decode("name", as: String.self)
            }
        }
    }

    static func keySlots(_ store: TaskStore, _ key: String) async throws -> Int {
        try await store.pool.withConnection { connection in
            try connection.query("SELECT used FROM admission_slot_counts WHERE kind = 'key' AND name = $1", [key]).single().decode("used", as: Int.self)
        }
    }

    func complete(_ claim: ClaimedTask, on store: TaskStore) async throws -> TaskRecord {
        try await store.queue.report(TaskReport(attempt: claim.attempt, lease: claim.lease, state: .completed),
                                     cluster: cluster, node: claim.task.assignedNode, taskID: claim.id)
    }

    @Test("two initiators racing to claim 3-node tasks that share two nodes never fill a node past its capacity")
    func racingInitiators() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster(nodes: ["n1", "n2", "n3", "n4"], capacity: 3)
            var batch: [TaskSubmission] = []
            for _ in 0..<40 {
                batch.append(TaskSubmission(type: "noop", participatingNodes: ["n1", "n3", "n4"]))
                batch.append(TaskSubmission(type: "noop", participatingNodes: ["n2", "n3", "n4"]))
            }
            _ = try await store.submissions.submitBatch(batch, cluster: cluster)
            // Each initiator claims what it can, looks at every node while holding it, and only then reports:
            // the two hold slots on n3 and n4 at the same moments.
            @Sendable func drain(_ node: String) async throws -> (claimed: Int, samples: [[Occupancy]]) {
                var claimed = 0
                var samples: [[Occupancy]] = []
                while claimed < 40 {
                    let claims = try await store.queue.claim(cluster: cluster, node: node, limit: 4, lease: .seconds(30))
                    samples.append(try await Self.occupancy(store))
                    for claim in claims { _ = try await complete(claim, on: store) }
                    claimed += claims.count
                    if claims.isEmpty { try await Task.sleep(for: .milliseconds(2)) }
                }
                return (claimed, samples)
            }
            async let first = drain("n1")
            async let second = drain("n2")
            let (a, b) = try await (first, second)
            #expect(a.claimed == 40 && b.claimed == 40)
            let samples = a.samples + b.samples
            #expect(samples.count >= 30, "the initiators took turns: \(samples.count) samples")
            for sample in samples {
                for node in sample {
                    #expect(node.actual <= node.capacity, "over capacity: \(node)")
                    #expect(node.used == node.actual, "the count drifted: \(node)")
                }
            }
            #expect(samples.contains { $0.contains { $0.node == "n3" && $0.actual == 3 } }, "n3 was filled to its capacity at some sample")
            #expect(try await Self.occupancy(store).allSatisfy { $0.used == 0 && $0.actual == 0 })
            #expect(try await store.reads.tasks(cluster: cluster, filter: TaskFilter(states: [.completed], limit: 1000)).tasks.count == 80)
        }
    }

    @Test("a claim that counted on a slot a concurrent claim took meanwhile claims nothing: the check at its end undoes it")
    func slotTakenMeanwhile() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster(capacity: 1)
            let task = try await store.submissions.submit(on: ["n1", "n2"])
            // Another claim takes n2's one slot and has not committed yet: this poll reads n2 free, claims, and
            // at its end waits for that slot row.
            let other = try await PostgresConnection.connect(store.database)
            try await other.perform { connection in
                try connection.execute("BEGIN; UPDATE admission_slots SET used = 1 WHERE kind = 'node' AND name = 'n2'")
            }
            let poll = Task { try await store.queue.poll(cluster: cluster, node: "n1", limit: 10, lease: .seconds(30)) }
            try await eventually("the poll waits for the slot row") {
                try await store.pool.withConnection { connection in
                    try connection.query("""
                        SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%tasks.poll%'
                        """).single().decode("n", as: Int.self)
                } == 1
            }
            try await other.perform { connection in try connection.execute("COMMIT") }
            let outcome = try await poll.value
            #expect(outcome.tasks.isEmpty && outcome.waiting, "the slot went to the other claim")
            #expect(try await store.reads.task(cluster: cluster, id: task.id).state == .queued)
            #expect(try await Self.occupancy(store).map { "\($0.node)=\($0.used)" } == ["n1=0", "n2=1", "n3=0"])
            await other.close()
        }
    }

    @Test("a task waits, naming the saturated node, until the task holding it ends; then it is claimed whole")
    func waitsForASlot() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            _ = try await store.clusters.registerNode(cluster: cluster, id: "n2", endpoint: "http://127.0.0.1:7002", capacity: 1)
            let holder = try await store.submissions.submit(on: ["n1", "n2"])
            let holding = try #require(try await store.queue.claimOne("n1"))
            #expect(holding.id == holder.id)
            let waiting = try await store.submissions.submit(on: ["n3", "n2"])
            let poll = try await store.queue.poll(cluster: cluster, node: "n3", limit: 10, lease: .seconds(30))
            #expect(poll.tasks.isEmpty && poll.waiting, "n2's one slot is taken")
            #expect(try await store.reads.task(cluster: cluster, id: waiting.id).waitingFor == ["n2"])
            #expect(try await store.reads.task(cluster: cluster, id: holder.id).waitingFor == nil, "received: waits on nothing")

            _ = try await complete(holding, on: store)
            let claimed = try #require(try await store.queue.claimOne("n3"))
            #expect(claimed.id == waiting.id)
            #expect(try await Self.occupancy(store).map { "\($0.node)=\($0.used)" } == ["n1=0", "n2=1", "n3=1"])
            #expect(try await store.reads.task(cluster: cluster, id: waiting.id).waitingFor == nil)
        }
    }

    @Test("slots come back when a lease expires, when a claim is released undelivered, and when a failure is retried")
    func everyExitGivesSlotsBack() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let expiring = try await store.submissions.submit(on: ["n1", "n2", "n3"])
            _ = try #require(try await store.queue.claimOne("n1"))
            try await store.expireLease(of: expiring.id)
            _ = try await store.maintenance.expireLeases()
            #expect(try await Self.occupancy(store).allSatisfy { $0.used == 0 }, "lease expiry")

            let released = try #require(try await store.queue.claimOne("n1"))
            _ = try await store.queue.releaseUndelivered([released], cluster: cluster, node: "n1")
            #expect(try await Self.occupancy(store).allSatisfy { $0.used == 0 }, "release")

            let failing = try #require(try await store.queue.claimOne("n1"))
            #expect(try await Self.occupancy(store).map(\.used) == [1, 1, 1])
            let requeued = try await store.queue.report(TaskReport(attempt: failing.attempt, lease: failing.lease, state: .failed,
                                                                   participants: [ParticipantOutcome(node: "n1", state: .completed),
                                                                                  ParticipantOutcome(node: "n2", state: .failed),
                                                                                  ParticipantOutcome(node: "n3", state: .completed)]),
                                                        cluster: cluster, node: "n1", taskID: failing.id)
            #expect(requeued.state == .queued && requeued.attemptNodes == ["n2"])
            #expect(try await Self.occupancy(store).allSatisfy { $0.used == 0 }, "a retry")
            try await store.endBackoff(of: requeued.id)
            _ = try #require(try await store.queue.claimOne("n1"))
            #expect(try await Self.occupancy(store).map { "\($0.node)=\($0.used)" } == ["n1=1", "n2=1", "n3=0"],
                    "a re-driven attempt takes slots on its initiator and on the participant it runs, not on the carried one")
            #expect(try await Self.unfoldedReturns(store) == ["n3"],
                    "the claim folded the returns of the slots it took into their rows; n3's wait for the next claim of n3")
        }
    }

    @Test("on_offline: fail ends a queued task when a node it runs on goes offline; wait keeps it, naming the node")
    func offlineParticipant() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let failing = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1", "n2"], onOffline: .fail),
                                                             cluster: cluster).task
            let waiting = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1", "n2"]), cluster: cluster).task
            #expect(try await store.maintenance.failOfflineWaiters().isEmpty, "n2 is online")
            try await store.backdateLastSeen(of: "n2", by: .seconds(120))
            _ = try await store.maintenance.markOfflineNodes(notSeenFor: .seconds(60))
            let failed = try await store.maintenance.failOfflineWaiters()
            #expect(failed.map(\.id) == [failing.id])
            #expect(failed.first?.state == .failed && failed.first?.error?.contains("n2") == true, "\(String(describing: failed.first?.error))")
            #expect(try await store.reads.task(cluster: cluster, id: waiting.id).waitingFor == ["n2"])
            #expect(try await store.queue.claimOne("n1") == nil, "nothing starts on an offline node")
        }
    }

    @Test("a concurrency key runs at most its limit at once; the rest wait in order; a task not due holds nothing")
    func concurrencyKeyQueues() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let later = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n3"],
                                                                          runAfter: Date().addingTimeInterval(86_400),
                                                                          concurrency: ConcurrencyKey(key: "vol1", limit: 2)),
                                                           cluster: cluster).task
            var tasks: [TaskRecord] = []
            for node in ["n1", "n2", "n1", "n2"] {
                tasks.append(try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: [node],
                                                                               concurrency: ConcurrencyKey(key: "vol1", limit: 2)),
                                                                cluster: cluster).task)
            }
            #expect(tasks[0].concurrency == ConcurrencyKey(key: "vol1", limit: 2))
            let first = try await store.queue.claim(cluster: cluster, node: "n1", limit: 1, lease: .seconds(30))
            let second = try await store.queue.claim(cluster: cluster, node: "n2", limit: 10, lease: .seconds(30))
            #expect(first.map(\.id) == [tasks[0].id] && second.map(\.id) == [tasks[1].id], "two at once, the first two")
            #expect(try await Self.keySlots(store, "vol1") == 2)
            #expect(try await store.queue.poll(cluster: cluster, node: "n1", limit: 10, lease: .seconds(30)).waiting)
            _ = try await complete(first[0], on: store)
            let third = try await store.queue.claim(cluster: cluster, node: "n1", limit: 10, lease: .seconds(30))
            #expect(third.map(\.id) == [tasks[2].id])
            #expect(try await store.reads.task(cluster: cluster, id: later.id).state == .queued)
            _ = try await complete(second[0], on: store)
            _ = try await complete(third[0], on: store)
            let last = try await store.queue.claim(cluster: cluster, node: "n2", limit: 10, lease: .seconds(30))
            #expect(last.map(\.id) == [tasks[3].id])
            _ = try await complete(last[0], on: store)
            #expect(try await Self.keySlots(store, "vol1") == 0)
        }
    }

    @Test("cancel_newest cancels the arrival at once; cancel_in_progress stops the running one and the arrival runs after")
    func limitStrategies() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            func submit(_ key: String, _ strategy: LimitStrategy) async throws -> TaskRecord {
                try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1"],
                                                                  concurrency: ConcurrencyKey(key: key, onLimit: strategy)),
                                                   cluster: cluster).task
            }
            let kept = try await submit("probe", .cancelNewest)
            let refused = try await submit("probe", .cancelNewest)
            #expect(kept.state == .queued)
            #expect(refused.state == .cancelled, "answered already cancelled")
            #expect(refused.cancelReason?.contains("probe") == true, "\(refused.cancelReason ?? "no reason")")

            let running = try #require(try await store.queue.claimOne("n1"))
            #expect(running.id == kept.id)
            let old = try await submit("vol9", .queue)
            let oldClaim = try #require(try await store.queue.claimOne("n1"))
            #expect(oldClaim.id == old.id)
            let replacing = try await submit("vol9", .cancelInProgress)
            #expect(replacing.state == .queued)
            let flagged = try await store.reads.task(cluster: cluster, id: old.id)
            #expect(flagged.state == .received && flagged.cancelRequested && flagged.cancelReason == "replaced by task \(replacing.id) (concurrency key vol9)")
            #expect(try await store.queue.claimOne("n1") == nil, "the key's one slot is held until the old one stops")
            _ = try await store.queue.report(TaskReport(attempt: oldClaim.attempt, lease: oldClaim.lease, state: .cancelled),
                                             cluster: cluster, node: "n1", taskID: old.id)
            #expect(try await store.queue.claimOne("n1")?.id == replacing.id)
        }
    }
}
