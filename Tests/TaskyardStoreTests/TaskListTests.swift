import Foundation
import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

@Suite("Listing tasks")
struct TaskListTests {
    let cluster = TaskStore.cluster

    @Test("pages follow the cursor, oldest first, with no task twice or missed")
    func pagination() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let submitted = try await store.submissions.submitBatch(Array(repeating: TaskSubmission(type: "t", participatingNodes: ["n1"]), count: 25),
                                                        cluster: cluster)
            var seen: [Int64] = []
            var cursor: TaskCursor?
            var pages = 0
            repeat {
                let page = try await store.reads.tasks(cluster: cluster, filter: TaskFilter(limit: 10, after: cursor))
                seen += page.tasks.map(\.id)
                cursor = page.next
                pages += 1
            } while cursor != nil
            #expect(pages == 3)
            #expect(seen == submitted.map(\.id))
            // A bare id, the cursor of earlier versions, still starts after that task…
            let legacy = try await store.reads.tasks(cluster: cluster, filter: TaskFilter(limit: 5, after: try TaskCursor(String(submitted[9].id))))
            #expect(legacy.tasks.map(\.id) == submitted[10..<15].map(\.id))
            // …and one past every task ends the list.
            let beyond = try await store.reads.tasks(cluster: cluster, filter: TaskFilter(after: TaskCursor(createdMicros: nil, lastID: submitted[24].id + 1000)))
            #expect(beyond.tasks.isEmpty && beyond.next == nil)
        }
    }

    @Test("filters: state, type, node, time window, roots or children, opaque id, internal")
    func filters() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let a = try await store.submissions.submit(TaskSubmission(type: "alpha", participatingNodes: ["n1", "n2"], opaqueID: "op"), cluster: cluster).task
            let b = try await store.submissions.submit(TaskSubmission(type: "beta", participatingNodes: ["n2"]), cluster: cluster).task
            let hidden = try await store.submissions.submit(TaskSubmission(type: "alpha", participatingNodes: ["n3"], isInternal: true), cluster: cluster).task
            var children: [Int64] = []
            for _ in 0..<2 {
                children.append(try await store.submissions.submit(TaskSubmission(type: "step", participatingNodes: ["n3"], parentID: a.id, opaqueID: "op"),
                                                       cluster: cluster).task.id)
            }
            let claim = try #require(try await store.queue.claimOne("n1"))
            _ = try await store.queue.report(TaskReport(attempt: 1, lease: claim.lease, state: .completed, participants: [
                ParticipantOutcome(node: "n1", state: .completed), ParticipantOutcome(node: "n2", state: .completed),
            ]), cluster: cluster, node: "n1", taskID: a.id)

            func ids(_ filter: TaskFilter) async throws -> [Int64] {
                try await store.reads.tasks(cluster: cluster, filter: filter).tasks.map(\.id)
            }
            #expect(try await store.reads.children(cluster: cluster, of: a.id).map(\.id) == children, "sub-tasks only: outcomes are not tasks")
            #expect(try await ids(TaskFilter(states: [.completed], parent: .roots)) == [a.id])
            #expect(try await ids(TaskFilter(states: [.queued], parent: .roots)) == [b.id])
            #expect(try await ids(TaskFilter(type: "alpha", parent: .roots)) == [a.id])
            #expect(try await ids(TaskFilter(type: "alpha", parent: .roots, includeInternal: true)) == [a.id, hidden.id])
            #expect(try await ids(TaskFilter(node: "n2", parent: .roots)) == [b.id])
            #expect(try await ids(TaskFilter(parent: .task(a.id))) == children)
            #expect(try await ids(TaskFilter(opaqueID: "op")) == [a.id] + children)
            #expect(try await ids(TaskFilter(since: Date().addingTimeInterval(60))).isEmpty)
            #expect(try await ids(TaskFilter(until: Date().addingTimeInterval(60), parent: .roots)) == [a.id, b.id])
            let unknown = try await #require(throws: TaskyardError.self) {
                _ = try await store.reads.tasks(cluster: "nope")
            }
            #expect(unknown.kind == .notFound)
        }
    }
}
