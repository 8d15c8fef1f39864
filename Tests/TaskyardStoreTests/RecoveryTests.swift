import Foundation
import Postgres
import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

/// What the store does when agents fail, leases run out, nodes go away, and tasks must keep their order.
@Suite("Retries, leases, lost nodes, ordering keys")
struct RecoveryTests {
    let cluster = TaskStore.cluster

    @Test("a failed attempt with attempts left waits out a backoff, then runs again; the last failure is final")
    func retriesWithBackoff() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let task = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1"], maxAttempts: 2),
                                              cluster: cluster).task
            let first = try #require(try await store.queue.claimOne())
            let requeued = try await store.queue.report(TaskReport(attempt: 1, lease: first.lease, state: .failed, error: "flaky"),
                                                  cluster: cluster, node: "n1", taskID: task.id)
            #expect(requeued.state == .queued)
            #expect(requeued.error == "flaky", "the last error stays visible while the task waits")
            let wait = try #require(requeued.runAfter).timeIntervalSince(requeued.updatedAt)
            #expect(wait >= 0.9 && wait <= 2.1, "base 2 s, jittered down by up to half: \(wait)")
            #expect(try await store.queue.claimOne() == nil, "not before the backoff")
            try await store.endBackoff(of: task.id)
            let second = try #require(try await store.queue.claimOne())
            #expect(second.attempt == first.attempt + 1)
            let done = try await store.queue.report(TaskReport(attempt: 2, lease: second.lease, state: .failed, error: "still broken"),
                                              cluster: cluster, node: "n1", taskID: task.id)
            #expect(done.state == .failed)
            let events = try await store.reads.events(of: task).map { "\($0.from?.rawValue ?? "-")>\($0.to.rawValue)@\($0.attempt)" }
            #expect(events == ["->queued@0", "queued>received@1", "received>queued@1", "queued>received@2", "received>failed@2"])
            #expect(try await store.reads.participantOutcomes(cluster: cluster, taskID: task.id).isEmpty, "no participants reported here")
            #expect(store.configuration.retry.delay(afterAttempt: 30) <= .seconds(300), "capped")
        }
    }

    @Test("an expired lease queues the task again for the next attempt, fails it after the last, cancels it if asked")
    func leaseExpiry() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let again = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1"], maxAttempts: 2), cluster: cluster).task
            let last = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n2"], maxAttempts: 1), cluster: cluster).task
            let cancelled = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n3"], maxAttempts: 3), cluster: cluster).task
            let held = try #require(try await store.queue.claimOne("n1"))
            _ = try #require(try await store.queue.claimOne("n2"))
            _ = try #require(try await store.queue.claimOne("n3"))
            _ = try await store.submissions.cancel(cluster: cluster, taskID: cancelled.id)
            #expect(try await store.maintenance.expireLeases().isEmpty, "leases still running")
            for task in [again, last, cancelled] { try await store.expireLease(of: task.id) }

            let ended = try await store.maintenance.expireLeases()
            #expect(ended.map(\.state) == [.queued, .failed, .cancelled])
            #expect(ended[1].error == "lease expired after 1 attempts")
            // The stale holder's report is refused: the task belongs to the next attempt.
            let stale = try await #require(throws: TaskyardError.self) {
                _ = try await store.queue.report(TaskReport(attempt: held.attempt, lease: held.lease, state: .completed), cluster: cluster, node: "n1", taskID: again.id)
            }
            #expect(stale.kind == .conflict)
            let next = try #require(try await store.queue.claimOne("n1"))
            #expect(next.id == again.id && next.attempt == 2)
            let event = try #require(try await store.reads.events(of: again).first { $0.to == .queued && $0.from == .received })
            #expect(event.detail?["reason"] == "lease expired")
        }
    }

    @Test("heartbeats renew leases of held tasks and report the ones lost")
    func heartbeats() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let task = try await store.submissions.submit(on: ["n1"])
            let held = try #require(try await store.queue.claim(cluster: cluster, node: "n1", limit: 1, lease: .seconds(5)).first)
            let renewal = try await store.queue.renewLeases(cluster: cluster, node: "n1",
                                                      tasks: [HeldTask(id: task.id, attempt: held.attempt, lease: held.lease, progress: TaskProgress(completed: 1)),
                                                              HeldTask(id: 4242, attempt: 1, lease: held.lease)], lease: .seconds(60))
            #expect(renewal.lost == [4242])
            let renewed = try await store.reads.reload(task)
            #expect(try #require(renewed.leaseExpiresAt).timeIntervalSince(try #require(held.leaseExpiresAt)) > 50)
            #expect(renewed.progress == ["completed": 1])
            let wrongAttempt = try await store.queue.renewLeases(cluster: cluster, node: "n1",
                                                           tasks: [HeldTask(id: task.id, attempt: held.attempt + 1, lease: held.lease)], lease: .seconds(60))
            #expect(wrongAttempt.lost == [task.id])
        }
    }

    @Test("a node not seen goes offline; its queued tasks move to another participant, strict ones stay and say why")
    func nodeLoss() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let movable = try await store.submissions.submit(on: ["n1", "n2"])
            let strict = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1", "n2"], affinity: .strict),
                                                cluster: cluster).task
            let stranded = try await store.submissions.submit(on: ["n1"])
            try await store.backdateLastSeen(of: "n1", by: .seconds(300))
            let offline = try await store.maintenance.markOfflineNodes(notSeenFor: .seconds(60))
            #expect(offline.map(\.node) == ["n1"])
            let moved = try await store.maintenance.reassignFromOfflineNodes()
            #expect(moved.map(\.taskID) == [movable.id])
            #expect(moved.first?.to == "n2")
            #expect(try await store.reads.reload(movable).assignedNode == "n2")
            #expect(try await store.reads.reload(strict).assignedNode == "n1")
            #expect(try await store.reads.reload(stranded).assignedNode == "n1", "no other participant to move to")
            let note = try await store.reads.events(of: strict).last?.detail?["reason"]
            #expect(note == "awaiting node n1, which is offline: affinity strict keeps the task on it")
            let reason = try await store.reads.events(of: movable).last?.detail
            #expect(reason == ["reason": "reassigned after node loss", "from": "n1", "to": "n2"])
            // The node comes back: its next poll puts it online again.
            try await store.clusters.recordHeartbeat(cluster: cluster, node: "n1")
            #expect(try await store.clusters.nodes(cluster: cluster).first { $0.id == "n1" }?.status == .online)
        }
    }

    @Test("tasks with one ordering key are handed out one at a time, in id order, across nodes")
    func orderingKeys() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            var keyed: [TaskRecord] = []
            for node in ["n1", "n2", "n1"] {
                keyed.append(try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: [node], orderingKey: "vol1"),
                                                    cluster: cluster).task)
            }
            let free = try await store.submissions.submit(on: ["n2"])
            let firstN2 = try await store.queue.claim(cluster: cluster, node: "n2", limit: 10, lease: .seconds(30))
            #expect(firstN2.map(\.id) == [free.id], "the keyed task on n2 waits for the first one on n1")
            let first = try await store.queue.claim(cluster: cluster, node: "n1", limit: 10, lease: .seconds(30))
            #expect(first.map(\.id) == [keyed[0].id], "only the first of the key, not the third")
            _ = try await store.queue.report(TaskReport(attempt: 1, lease: first[0].lease, state: .completed), cluster: cluster, node: "n1", taskID: keyed[0].id)
            #expect(try await store.queue.claim(cluster: cluster, node: "n1", limit: 10, lease: .seconds(30)).isEmpty)
            #expect(try await store.queue.claim(cluster: cluster, node: "n2", limit: 10, lease: .seconds(30)).map(\.id) == [keyed[1].id])
        }
    }

    @Test("a type's default attempt budget applies when a task asks for none")
    func attemptsPerType() async throws {
        try await TestDatabase.withPool { pool in
            var configuration = TaskStore.Configuration()
            configuration.maxAttemptsByType = ["backup": 7]
            let store = TaskStore(pool: pool, configuration: configuration)
            try await store.makeCluster()
            #expect(try await store.submissions.submit("backup", on: ["n1"]).maxAttempts == 7)
            #expect(try await store.submissions.submit("noop", on: ["n1"]).maxAttempts == 3)
            let asked = try await store.submissions.submit(TaskSubmission(type: "backup", participatingNodes: ["n1"], maxAttempts: 2), cluster: cluster)
            #expect(asked.task.maxAttempts == 2)
            let batch = try await store.submissions.submitBatch([TaskSubmission(type: "backup", participatingNodes: ["n1"])], cluster: cluster)
            #expect(batch.map(\.maxAttempts) == [7])
        }
    }

    @Test("per-type leases override the claim's lease")
    func leasesPerType() async throws {
        try await TestDatabase.withPool { pool in
            var configuration = TaskStore.Configuration()
            configuration.leaseByType = ["backup": .seconds(600)]
            let store = TaskStore(pool: pool, configuration: configuration)
            try await store.makeCluster()
            _ = try await store.submissions.submit("backup", on: ["n1"])
            _ = try await store.submissions.submit("noop", on: ["n1"])
            let claimed = try await store.queue.claim(cluster: cluster, node: "n1", limit: 2, lease: .seconds(30))
            let leases = try claimed.map { try #require($0.leaseExpiresAt).timeIntervalSince(try #require($0.receivedAt)).rounded() }
            #expect(leases == [600, 30])
        }
    }
}
