import Foundation
import Postgres
import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

/// `on_finish`: a follow-up task submitted in the transaction that finishes a task, however it finishes.
@Suite("Follow-up tasks")
struct FollowUpTests {
    let cluster = TaskStore.cluster

    @Test("a task that completes submits its follow-up in the same transaction, with what it ended with as the payload")
    func onCompletion() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let task = try await store.submissions.submit(
                TaskSubmission(type: "volume_create", participatingNodes: ["n1", "n2"], payload: ["name": "vol1"],
                               onFinish: FollowUp(type: "volume_record", node: "n3")), cluster: cluster).task
            #expect(task.onFinish == FollowUp(type: "volume_record", node: "n3") && task.followUpID == nil)
            let claim = try #require(try await store.queue.claimOne("n1"))
            let finished = try await store.queue.report(
                TaskReport(attempt: claim.attempt, lease: claim.lease, state: .completed, result: ["size": 10],
                           participants: [ParticipantOutcome(node: "n1", state: .completed), ParticipantOutcome(node: "n2", state: .completed)]),
                cluster: cluster, node: "n1", taskID: claim.id)
            let followUpID = try #require(try await store.reads.reload(finished).followUpID)
            let followUp = try await store.reads.task(cluster: cluster, id: followUpID)
            #expect(followUp.type == "volume_record" && followUp.state == .queued && followUp.assignedNode == "n3"
                    && followUp.participatingNodes == ["n3"])
            let payload = followUp.payload.value
            #expect(payload == .object(["task_id": .integer(task.id), "type": .string("volume_create"), "state": .string("completed"),
                                        "result": .object(["size": .integer(10)]), "error": .null,
                                        "payload": .object(["name": .string("vol1")])]), "\(payload)")
            #expect(try await store.reads.events(of: followUp).map(\.detail) == [.object(["follow_up_of": .integer(task.id)])])
            let next = try #require(try await store.queue.claimOne("n3"), "the follow-up is claimable at once")
            #expect(next.id == followUpID)
        }
    }

    @Test("every way of finishing submits it: a cancel of a queued task, a failure on the last attempt; a task without one submits none")
    func everyFinish() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let hook = FollowUp(type: "cleanup", node: "n2")
            let cancelled = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1"], onFinish: hook),
                                                               cluster: cluster).task
            _ = try await store.submissions.cancel(cluster: cluster, taskID: cancelled.id, reason: "not wanted")
            let afterCancel = try #require(try await store.reads.reload(cancelled).followUpID)
            #expect(try await store.reads.task(cluster: cluster, id: afterCancel).payload.value["state"] == .string("cancelled"))

            let failing = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1"], maxAttempts: 1,
                                                                            onFinish: hook), cluster: cluster).task
            let plain = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1"]), cluster: cluster).task
            for _ in 0..<2 {
                let claim = try #require(try await store.queue.claimOne("n1"))
                _ = try await store.queue.report(TaskReport(attempt: claim.attempt, lease: claim.lease, state: .failed, error: "disk full",
                                                            participants: [ParticipantOutcome(node: "n1", state: .failed)]),
                                                 cluster: cluster, node: "n1", taskID: claim.id)
            }
            let afterFailure = try #require(try await store.reads.reload(failing).followUpID)
            let payload = try await store.reads.task(cluster: cluster, id: afterFailure).payload.value
            #expect(payload["state"] == .string("failed") && payload["error"] == .string("disk full"))
            #expect(try await store.reads.reload(plain).followUpID == nil)
            let queuedOnN2 = try await store.reads.tasks(cluster: cluster, filter: TaskFilter(node: "n2")).tasks
            #expect(queuedOnN2.map(\.type) == ["cleanup", "cleanup"], "one follow-up per finish, none for the plain task")
        }
    }

    @Test("a follow-up on a node the cluster does not have is refused, alone and in a batch, naming the field")
    func unknownNode() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let submission = TaskSubmission(type: "noop", participatingNodes: ["n1"], onFinish: FollowUp(type: "noop", node: "n9"))
            await #expect { try await store.submissions.submit(submission, cluster: cluster) } throws: { error in
                (error as? TaskyardError)?.field == "on_finish.node"
            }
            await #expect { try await store.submissions.submitBatch([TaskSubmission(type: "noop", participatingNodes: ["n1"]), submission],
                                                                    cluster: cluster) } throws: { error in
                (error as? TaskyardError)?.field == "tasks[1].on_finish.node"
            }
            let invalid = TaskSubmission(type: "noop", participatingNodes: ["n1"], onFinish: FollowUp(type: "no type!", node: "n1"))
            await #expect { try await store.submissions.submit(invalid, cluster: cluster) } throws: { error in
                (error as? TaskyardError)?.field == "on_finish.type"
            }
            #expect(try await store.reads.tasks(cluster: cluster, filter: TaskFilter()).tasks.isEmpty)
        }
    }
}
