import Foundation
import Postgres
import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

@Suite("Single submits that arrive together")
struct SubmitGroupTests {
    let cluster = TaskStore.cluster

    enum Expected: Equatable {
        case created
        case earlierTask(Int64)
        case refused(field: String)
    }

    @Test("share commits, and each still gets its own task or its own refusal")
    func groupedSubmits() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let parent = try await store.submissions.submit(on: ["n1"])
            _ = try await store.submissions.cancel(cluster: cluster, taskID: parent.id, reason: nil, opaqueID: nil)
            let earlier = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n2"], idempotencyKey: "kept"),
                                                 cluster: cluster).task

            // Mostly plain submits, with every kind of item that must not take its group down with it.
            var submissions: [(TaskSubmission, Expected)] = []
            for index in 0..<200 {
                switch index % 10 {
                case 3:
                    submissions.append((TaskSubmission(type: "noop", participatingNodes: ["n1", "n9"]), .refused(field: "participating_nodes[1]")))
                case 5:
                    submissions.append((TaskSubmission(type: "noop", participatingNodes: ["n1"], parentID: parent.id), .refused(field: "parent_id")))
                case 7:
                    // The request that made `earlier`, again: its task, nothing new.
                    submissions.append((TaskSubmission(type: "noop", participatingNodes: ["n2"], idempotencyKey: "kept"), .earlierTask(earlier.id)))
                case 8:
                    // Its key with another request: refused.
                    submissions.append((TaskSubmission(type: "other", participatingNodes: ["n2"], idempotencyKey: "kept"), .refused(field: "Idempotency-Key")))
                case 9:
                    submissions.append((TaskSubmission(type: "noop", participatingNodes: ["n3", "n1"], idempotencyKey: "new-\(index)"), .created))
                default:
                    submissions.append((TaskSubmission(type: "noop", participatingNodes: ["n\(index % 3 + 1)"], payload: ["i": .integer(Int64(index))]), .created))
                }
            }
            let outcomes = await withTaskGroup(of: (Int, Result<(task: TaskRecord, created: Bool), any Error>).self) { group in
                for (index, (submission, _)) in submissions.enumerated() {
                    group.addTask {
                        do { return (index, .success(try await store.submissions.submit(submission, cluster: cluster))) } catch { return (index, .failure(error)) }
                    }
                }
                return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }

            var createdIDs: [Int64] = []
            for (index, (submission, expected)) in submissions.enumerated() {
                switch (expected, outcomes[index]!) {
                case (.created, .success(let result)):
                    #expect(result.created, "item \(index)")
                    #expect(result.task.type == submission.type && result.task.participatingNodes == submission.participatingNodes
                            && result.task.payload == submission.payload && result.task.idempotencyKey == submission.idempotencyKey,
                            "item \(index) got another item's task")
                    createdIDs.append(result.task.id)
                case (.earlierTask(let id), .success(let result)):
                    #expect(!result.created && result.task.id == id, "item \(index)")
                case (.refused(let field), .failure(let error as TaskyardError)):
                    #expect(error.field == field, "item \(index): \(error.message)")
                default:
                    Issue.record("item \(index): expected \(expected), got \(outcomes[index]!)")
                }
            }
            #expect(Set(createdIDs).count == 120)

            // What the user sees: every task written once with its one event, in far fewer commits than tasks.
            let ids = createdIDs
            let written = try await store.pool.withConnection { connection in
                try connection.query("""
                    SELECT count(*) AS tasks, count(DISTINCT t.xmin::text) AS commits,
                           (SELECT count(*) FROM task_events e WHERE e.task_id = ANY ($1::bigint[])) AS events
                      FROM tasks t WHERE t.id = ANY ($1::bigint[])
                    """, [ids]).single()
            }
            #expect(try written.decode("tasks", as: Int.self) == 120)
            #expect(try written.decode("events", as: Int.self) == 120)
            let commits = try written.decode("commits", as: Int.self)
            #expect(commits < 120 / 2, "\(commits) commits for 120 tasks submitted at once")
            // Refused items wrote nothing.
            #expect(try await store.reads.tasks(cluster: cluster, filter: TaskFilter(limit: 500)).tasks.count == 122)
        }
    }
}
