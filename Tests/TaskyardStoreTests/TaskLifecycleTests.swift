import Foundation
import Postgres
import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

@Suite("Task lifecycle in the store")
struct TaskLifecycleTests {
    let cluster = TaskStore.cluster

    @Test("a submitted task is queued on its first participant, with its history started")
    func submit() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let (task, created) = try await store.submissions.submit(
                TaskSubmission(type: "volume_create", participatingNodes: ["n2", "n3"], payload: ["name": "vol1"],
                               opaqueID: "req-7"), cluster: cluster)
            #expect(created)
            #expect(task.state == .queued)
            #expect(task.assignedNode == "n2")
            #expect(task.participatingNodes == ["n2", "n3"])
            #expect(task.payload == ["name": "vol1"])
            #expect(task.attempt == 0)
            #expect(task.maxAttempts == 3)
            #expect(task.opaqueID == "req-7")
            #expect(task.finishedAt == nil && task.leaseExpiresAt == nil)
            #expect(try await store.reads.reload(task) == task)
            let events = try await store.reads.events(of: task)
            #expect(events.map(\.from) == [nil])
            #expect(events.map(\.to) == [.queued])
        }
    }

    @Test("unknown cluster is 404; an unregistered node is 422 naming the field; nothing is written")
    func submitErrors() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let noCluster = try await #require(throws: TaskyardError.self) {
                _ = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1"]), cluster: "nope")
            }
            #expect(noCluster.kind == .notFound)
            let noNode = try await #require(throws: TaskyardError.self) {
                _ = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1", "n9"]), cluster: cluster)
            }
            #expect(noNode.kind == .invalid)
            #expect(noNode.field == "participating_nodes[1]")
            #expect(noNode.message.contains("n9"))
            let noParent = try await #require(throws: TaskyardError.self) {
                _ = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1"], parentID: 12345), cluster: cluster)
            }
            #expect(noParent.field == "parent_id")
            #expect(try await store.snapshot().isEmpty)
        }
    }

    @Test("a repeated idempotency key returns the first task and creates nothing, even when racing")
    func idempotency() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let submission = TaskSubmission(type: "noop", participatingNodes: ["n1"], idempotencyKey: "key-1")
            let first = try await store.submissions.submit(submission, cluster: cluster)
            let again = try await store.submissions.submit(submission, cluster: cluster)
            #expect(first.created && !again.created)
            #expect(again.task.id == first.task.id)

            let racing = TaskSubmission(type: "noop", participatingNodes: ["n1"], idempotencyKey: "key-2")
            let results = try await withThrowingTaskGroup(of: (TaskRecord, Bool).self) { group in
                for _ in 0..<10 { group.addTask { try await store.submissions.submit(racing, cluster: cluster) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(Set(results.map(\.0.id)).count == 1)
            #expect(results.filter(\.1).count == 1)
            let page = try await store.reads.tasks(cluster: cluster)
            #expect(page.tasks.count == 2)
        }
    }

    @Test("a batch is written all together, in order, or not at all")
    func batch() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let tasks = try await store.submissions.submitBatch([
                TaskSubmission(type: "a", participatingNodes: ["n1"]),
                TaskSubmission(type: "b", participatingNodes: ["n2", "n3"], payload: ["k": "v"], priority: 5),
                TaskSubmission(type: "c", participatingNodes: ["n3"], maxAttempts: 7),
            ], cluster: cluster)
            #expect(tasks.map(\.type) == ["a", "b", "c"])
            #expect(tasks.map(\.assignedNode) == ["n1", "n2", "n3"])
            #expect(tasks[1].participatingNodes == ["n2", "n3"])
            #expect(tasks[1].payload == ["k": "v"])
            #expect(tasks[2].maxAttempts == 7)
            #expect(tasks.allSatisfy { $0.state == .queued })
            for task in tasks { #expect(try await store.reads.events(of: task).map(\.to) == [.queued]) }

            let before = try await store.snapshot()
            let error = try await #require(throws: TaskyardError.self) {
                _ = try await store.submissions.submitBatch([
                    TaskSubmission(type: "ok", participatingNodes: ["n1"]),
                    TaskSubmission(type: "bad", participatingNodes: ["ghost"]),
                ], cluster: cluster)
            }
            #expect(error.field == "tasks[1].participating_nodes[0]")
            #expect(try await store.snapshot() == before)
            let tooMany = try await #require(throws: TaskyardError.self) {
                _ = try await store.submissions.submitBatch(Array(repeating: TaskSubmission(type: "t", participatingNodes: ["n1"]), count: 1001),
                                                cluster: cluster)
            }
            #expect(tooMany.field == "tasks")
        }
    }

    @Test("a claim takes the node's due tasks by priority then age, with attempt + 1 and a lease")
    func claim() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let low = try await store.submissions.submit(on: ["n1"], priority: 0)
            let high = try await store.submissions.submit(on: ["n1"], priority: 10)
            let lowLater = try await store.submissions.submit(on: ["n1"], priority: 0)
            _ = try await store.submissions.submit(on: ["n2"])
            _ = try await store.submissions.submit(TaskSubmission(type: "later", participatingNodes: ["n1"],
                                                      runAfter: Date().addingTimeInterval(3600)), cluster: cluster)
            let claimed = try await store.queue.claim(cluster: cluster, node: "n1", limit: 10, lease: .seconds(30))
            #expect(claimed.map(\.id) == [high.id, low.id, lowLater.id])
            for task in claimed {
                #expect(task.state == .received)
                #expect(task.attempt == 1)
                let lease = try #require(task.leaseExpiresAt).timeIntervalSince(try #require(task.receivedAt))
                #expect(abs(lease - 30) < 0.01)
                #expect(try await store.reads.events(of: task.task).last.map { [$0.from, $0.to] } == [.queued, .received])
            }
            #expect(try await store.queue.claim(cluster: cluster, node: "n1", limit: 10, lease: .seconds(30)).isEmpty)
        }
    }

    @Test("a report ends the task and records each participant as a child task")
    func report() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let task = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1", "n2", "n3"], maxAttempts: 1),
                                              cluster: cluster).task
            let claimed = try #require(try await store.queue.claimOne())
            let started = Date(timeIntervalSince1970: 1_800_000_000)
            let done = try await store.queue.report(TaskReport(attempt: 1, lease: claimed.lease, state: .failed, error: "n3: disk full", participants: [
                ParticipantOutcome(node: "n1", state: .completed, result: ["ok": true], startedAt: started),
                ParticipantOutcome(node: "n2", state: .completed, result: ["ok": true]),
                ParticipantOutcome(node: "n3", state: .failed, error: "disk full"),
            ]), cluster: cluster, node: "n1", taskID: claimed.id)
            #expect(done.state == .failed)
            #expect(done.error == "n3: disk full")
            #expect(done.finishedAt != nil && done.leaseExpiresAt == nil)

            #expect(try await store.reads.children(cluster: cluster, of: task.id).isEmpty, "outcomes are not tasks")
            let outcomes = try await store.reads.participantOutcomes(cluster: cluster, taskID: task.id)
            #expect(outcomes.map(\.outcome.node) == ["n1", "n2", "n3"])
            #expect(outcomes.map(\.outcome.state) == [.completed, .completed, .failed])
            #expect(outcomes.allSatisfy { $0.attempt == 1 && $0.outcome.finishedAt != nil })
            #expect(outcomes[0].outcome.result == ["ok": true])
            #expect(outcomes[0].outcome.startedAt == started)
            #expect(outcomes[2].outcome.error == "disk full")
            // The report's answer and a later read agree on what was stored.
            let read = try await store.reads.task(cluster: cluster, id: task.id)
            #expect(Set(read.participants) == Set(done.participants))
            #expect(read.participantViews.map(\.state) == [.completed, .completed, .failed])
            let events = try await store.reads.events(of: done)
            #expect(events.map(\.to) == [.queued, .received, .failed])
            #expect(events.last?.detail?["unsuccessful_participants"] == ["n3"])
        }
    }

    @Test("stale, misdirected and late reports are refused with 409 and change nothing")
    func refusedReports() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let task = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1", "n2"], maxAttempts: 1),
                                              cluster: cluster).task
            let first = try #require(try await store.queue.claimOne())
            _ = try await store.queue.report(TaskReport(attempt: 1, lease: first.lease, state: .failed), cluster: cluster, node: "n1", taskID: task.id)
            _ = try await store.submissions.retry(cluster: cluster, taskID: task.id)
            let second = try #require(try await store.queue.claimOne())
            #expect(second.attempt == 2)

            func refusal(_ report: TaskReport, node: String = "n1", id: Int64? = nil) async throws -> TaskyardError {
                let before = try await store.snapshot()
                let error = try await #require(throws: TaskyardError.self) {
                    _ = try await store.queue.report(report, cluster: cluster, node: node, taskID: id ?? task.id)
                }
                #expect(try await store.snapshot() == before)
                return error
            }
            let stale = try await refusal(TaskReport(attempt: 1, lease: first.lease, state: .completed))
            #expect(stale.kind == .conflict && stale.code.rawValue == "stale_attempt")
            let wrongNode = try await refusal(TaskReport(attempt: 2, lease: second.lease, state: .completed), node: "n2")
            #expect(wrongNode.kind == .conflict && wrongNode.code.rawValue == "wrong_node")
            let unknown = try await refusal(TaskReport(attempt: 1, lease: second.lease, state: .completed), id: 424_242)
            #expect(unknown.kind == .notFound)

            let forged = try await refusal(TaskReport(attempt: 2, lease: first.lease, state: .completed))
            #expect(forged.kind == .conflict && forged.code.rawValue == "stale_lease", "the right attempt without its claim's lease")
            _ = try await store.queue.report(TaskReport(attempt: 2, lease: second.lease, state: .completed), cluster: cluster, node: "n1", taskID: task.id)
            let late = try await refusal(TaskReport(attempt: 2, lease: second.lease, state: .failed))
            #expect(late.kind == .conflict && late.code.rawValue == "already_finished")
            #expect(try await store.reads.reload(task).state == .completed)
        }
    }

    @Test("cancel: queued ends at once, received is flagged, finished and non-abortable are 409")
    func cancel() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let queued = try await store.submissions.submit(on: ["n2"])
            let cancelled = try await store.submissions.cancel(cluster: cluster, taskID: queued.id, reason: "not needed", opaqueID: "op-1")
            #expect(cancelled.state == .cancelled)
            #expect(cancelled.cancelReason == "not needed")
            let event = try #require(try await store.reads.events(of: queued).last)
            #expect(event.from == .queued && event.to == .cancelled)
            #expect(event.detail == ["reason": "not needed", "opaque_id": "op-1"])
            #expect(try await store.queue.claim(cluster: cluster, node: "n2", limit: 5, lease: .seconds(30)).isEmpty)

            let running = try await store.submissions.submit(on: ["n1"])
            let claim = try #require(try await store.queue.claimOne())
            let flagged = try await store.submissions.cancel(cluster: cluster, taskID: running.id)
            #expect(flagged.state == .received && flagged.cancelRequested)
            let before = try await store.snapshot()
            #expect(try await store.submissions.cancel(cluster: cluster, taskID: running.id) == flagged)
            #expect(try await store.snapshot() == before, "a second cancel writes nothing more")
            let acknowledged = try await store.queue.report(TaskReport(attempt: 1, lease: claim.lease, state: .cancelled), cluster: cluster,
                                                      node: "n1", taskID: running.id)
            #expect(acknowledged.state == .cancelled)

            let finished = try await #require(throws: TaskyardError.self) {
                _ = try await store.submissions.cancel(cluster: cluster, taskID: queued.id)
            }
            #expect(finished.kind == .conflict && finished.code.rawValue == "already_finished")
            let pinned = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1"], abortable: false),
                                                cluster: cluster).task
            let notAbortable = try await #require(throws: TaskyardError.self) {
                _ = try await store.submissions.cancel(cluster: cluster, taskID: pinned.id)
            }
            #expect(notAbortable.code.rawValue == "not_abortable")
            #expect(try await store.reads.reload(pinned).state == .queued)
        }
    }

    @Test("one report answers with each participant's latest outcome, those carried forward from an earlier attempt included")
    func reportAnswersWithCarriedOutcomes() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let task = try await store.submissions.submit(on: ["n1", "n2", "n3"])
            let first = try #require(try await store.queue.claimOne("n1"))
            let requeued = try await store.queue.report(TaskReport(attempt: first.attempt, lease: first.lease, state: .failed,
                                                                   participants: [ParticipantOutcome(node: "n1", state: .completed),
                                                                                  ParticipantOutcome(node: "n2", state: .failed),
                                                                                  ParticipantOutcome(node: "n3", state: .completed)]),
                                                        cluster: cluster, node: "n1", taskID: task.id)
            #expect(requeued.attemptNodes == ["n2"])
            try await store.endBackoff(of: task.id)
            let second = try #require(try await store.queue.claimOne("n1"))
            let done = try await store.queue.report(TaskReport(attempt: second.attempt, lease: second.lease, state: .completed,
                                                               participants: [ParticipantOutcome(node: "n2", state: .completed)]),
                                                    cluster: cluster, node: "n1", taskID: task.id)
            #expect(done.state == .completed)
            let shown = done.participants.map { "\($0.outcome.node)@\($0.attempt)=\($0.outcome.state.rawValue)" }.sorted()
            #expect(shown == ["n1@1=completed", "n2@2=completed", "n3@1=completed"])
            let stored = try await store.reads.reload(task).participants.map { "\($0.outcome.node)@\($0.attempt)=\($0.outcome.state.rawValue)" }
            #expect(shown == stored.sorted(), "the answer is the task as stored")
        }
    }

    @Test("retry puts a failed task back with a fresh budget; attempt numbers keep counting")
    func retry() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let task = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1"], maxAttempts: 1),
                                              cluster: cluster).task
            let claim = try #require(try await store.queue.claimOne())
            _ = try await store.queue.report(TaskReport(attempt: 1, lease: claim.lease, state: .failed, error: "boom"), cluster: cluster, node: "n1", taskID: task.id)
            let retried = try await store.submissions.retry(cluster: cluster, taskID: task.id)
            #expect(retried.state == .queued)
            #expect(retried.error == nil && retried.finishedAt == nil)
            #expect(retried.attempt == 1)
            #expect(try await store.queue.claimOne()?.attempt == 2)
            let notRetryable = try await #require(throws: TaskyardError.self) {
                _ = try await store.submissions.retry(cluster: cluster, taskID: task.id)
            }
            #expect(notRetryable.kind == .conflict)
            #expect(try await store.reads.events(of: task).map(\.to) == [.queued, .received, .failed, .queued, .received])
        }
    }

    @Test("delete removes a finished tree with its events, and refuses a live one")
    func delete() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let task = try await store.submissions.submit(on: ["n1", "n2"])
            let live = try await #require(throws: TaskyardError.self) { try await store.submissions.delete(cluster: cluster, taskID: task.id) }
            #expect(live.kind == .conflict)
            let claim = try #require(try await store.queue.claimOne())
            _ = try await store.queue.report(TaskReport(attempt: 1, lease: claim.lease, state: .completed, participants: [
                ParticipantOutcome(node: "n1", state: .completed), ParticipantOutcome(node: "n2", state: .completed),
            ]), cluster: cluster, node: "n1", taskID: task.id)
            let other = try await store.submissions.submit(on: ["n3"])
            try await store.submissions.delete(cluster: cluster, taskID: task.id)
            let missing = try await #require(throws: TaskyardError.self) { _ = try await store.reads.reload(task) }
            #expect(missing.kind == .notFound)
            let rows = try await store.snapshot()
            #expect(rows.count == 2, "only the other task and its event remain: \(rows)")
            #expect(try await store.reads.reload(other).state == .queued)
            let unknown = try await #require(throws: TaskyardError.self) { try await store.submissions.delete(cluster: cluster, taskID: task.id) }
            #expect(unknown.kind == .notFound)
        }
    }

    @Test("nodes register idempotently and show the tasks they hold")
    func nodes() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let again = try await store.clusters.registerNode(cluster: cluster, id: "n1", endpoint: "http://127.0.0.1:9001",
                                                     labels: ["rack": "r2"], capacity: 4)
            #expect(again.endpoint == "http://127.0.0.1:9001" && again.capacity == 4 && again.labels == ["rack": "r2"])
            _ = try await store.submissions.submit(on: ["n1"])
            _ = try #require(try await store.queue.claimOne())
            try await store.clusters.recordHeartbeat(cluster: cluster, node: "n1")
            let nodes = try await store.clusters.nodes(cluster: cluster)
            #expect(nodes.map(\.id) == ["n1", "n2", "n3"])
            #expect(nodes.map(\.heldTasks) == [1, 0, 0])
            #expect(nodes.allSatisfy { $0.status == .online })
            let unknown = try await #require(throws: TaskyardError.self) { try await store.clusters.recordHeartbeat(cluster: cluster, node: "n9") }
            #expect(unknown.kind == .notFound)
            let noCluster = try await #require(throws: TaskyardError.self) {
                _ = try await store.clusters.registerNode(cluster: "nope", id: "n1", endpoint: "http://x:1")
            }
            #expect(noCluster.kind == .notFound)
            let duplicate = try await #require(throws: TaskyardError.self) { _ = try await store.clusters.createCluster(id: cluster, name: "again") }
            #expect(duplicate.kind == .conflict)
        }
    }

    @Test("least_loaded picks the participant with the fewest live tasks")
    func leastLoaded() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            for _ in 0..<3 { _ = try await store.submissions.submit(on: ["n1"]) }
            _ = try await store.submissions.submit(on: ["n2"])
            let task = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1", "n2", "n3"],
                                                             assign: .leastLoaded), cluster: cluster).task
            #expect(task.assignedNode == "n3")
        }
    }
}

extension TaskLifecycleTests {
    @Test("a claim that never reached its agent goes back at once with its attempt given back, and its lease is worth nothing after")
    func undeliveredClaimComesBack() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let task = try await store.submissions.submit(on: ["n1"])
            let lost = try #require(try await store.queue.claimOne("n1"))
            #expect(lost.attempt == 1)
            let released = try await store.queue.releaseUndelivered([lost], cluster: TaskStore.cluster, node: "n1")
            #expect(released.map(\.id) == [task.id])
            #expect(released.first?.state == .queued)
            #expect(released.first?.attempt == 0)
            #expect(try await store.reads.events(of: task).last?.detail == ["reason": "not delivered"])
            let again = try #require(try await store.queue.claimOne("n1"))
            #expect(again.id == task.id && again.attempt == 1)
            // The first claim's lease no longer counts, though its attempt number came round again.
            await #expect(throws: TaskyardError.self) {
                _ = try await store.queue.report(TaskReport(attempt: 1, lease: lost.lease, state: .completed),
                                           cluster: TaskStore.cluster, node: "n1", taskID: task.id)
            }
            #expect(try await store.queue.releaseUndelivered([lost], cluster: TaskStore.cluster, node: "n1").isEmpty,
                    "a stale claim releases nothing")
        }
    }

    @Test("control characters in reported errors are replaced before they are stored: no escape sequence reaches a terminal")
    func controlCharactersInErrors() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let task = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1", "n2"], maxAttempts: 1),
                                              cluster: TaskStore.cluster).task
            let claim = try #require(try await store.queue.claimOne("n1"))
            let dirty = "disk \u{1B}[2J\u{1B}]0;owned\u{7} full\u{9B}31m\u{7F}\nline two\tend"
            let clean = "disk \u{FFFD}[2J\u{FFFD}]0;owned\u{FFFD} full\u{FFFD}31m\u{FFFD}\nline two\tend"
            let done = try await store.queue.report(TaskReport(attempt: claim.task.attempt, lease: claim.lease, state: .failed, error: dirty, participants: [
                ParticipantOutcome(node: "n1", state: .failed, error: dirty), ParticipantOutcome(node: "n2", state: .completed),
            ]), cluster: TaskStore.cluster, node: "n1", taskID: task.id)
            #expect(done.state == .failed)
            #expect(try await store.reads.reload(task).error == clean)
            let outcomes = try await store.reads.participantOutcomes(cluster: TaskStore.cluster, taskID: task.id)
            #expect(outcomes.first { $0.outcome.node == "n1" }?.outcome.error == clean)
        }
    }
}
