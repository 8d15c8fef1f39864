import Foundation
import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

/// The store holds a completed report to the task's completion policy: an agent cannot report done what its
/// participants' outcomes say is not.
@Suite("Completion policy in the store")
struct CompletionPolicyStoreTests {
    func claimed(_ store: TaskStore, _ policy: CompletionPolicy) async throws -> (TaskRecord, ClaimedTask) {
        let task = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1", "n2", "n3"],
                                                                     completeWhen: policy), cluster: TaskStore.cluster).task
        #expect(task.completeWhen == policy)
        return (task, try #require(try await store.queue.claimOne()))
    }

    func report(_ claim: ClaimedTask, _ states: [ReportedState]) -> TaskReport {
        TaskReport(attempt: claim.attempt, lease: claim.lease, state: .completed,
                   participants: zip(["n1", "n2", "n3"], states).map { ParticipantOutcome(node: $0, state: $1) })
    }

    @Test("quorum: completed with two of three; under all, the same report is refused 422 and changes nothing")
    func heldToThePolicy() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let (quorum, quorumClaim) = try await claimed(store, .quorum)
            let done = try await store.queue.report(report(quorumClaim, [.completed, .failed, .completed]),
                                                    cluster: TaskStore.cluster, node: "n1", taskID: quorum.id)
            #expect(done.state == .completed)
            #expect(try await store.reads.reload(quorum).participants.map(\.outcome.state).sorted { $0.rawValue < $1.rawValue }
                    == [.completed, .completed, .failed])

            let (all, allClaim) = try await claimed(store, .all)
            let refused = try await #require(throws: TaskyardError.self) {
                try await store.queue.report(report(allClaim, [.completed, .failed, .completed]),
                                             cluster: TaskStore.cluster, node: "n1", taskID: all.id)
            }
            #expect(refused.kind == .invalid && refused.field == "participants", "\(refused)")
            #expect(try await store.reads.reload(all).state == .received)

            let (atLeast, atLeastClaim) = try await claimed(store, .atLeast(3))
            await #expect(throws: TaskyardError.self) {
                try await store.queue.report(report(atLeastClaim, [.completed, .cancelled, .completed]),
                                             cluster: TaskStore.cluster, node: "n1", taskID: atLeast.id)
            }
            #expect(try await store.reads.reload(atLeast).completeWhen == .atLeast(3))
        }
    }
}
