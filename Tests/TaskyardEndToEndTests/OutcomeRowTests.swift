import Foundation
import Testing
import TaskyardAPI
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

@Suite("Participant outcome rows")
struct OutcomeRowTests {
    @Test("outcome rows are records: the payload is stored once, and retry, cancel and delete of one are refused with a reason")
    func outcomesAreRecords() async throws {
        try await TestDatabase.withPool { pool in
            var configuration = TaskStore.Configuration()
            configuration.retryBackoffBase = 0.05
            configuration.retryBackoffCap = 0.1
            try await Deployment.run(on: TaskStore(pool: pool, configuration: configuration)) { deployment in
                // 200 KB of payload on three nodes, failing three times: nine outcome rows.
                let payload: JSONValue = ["blob": .string(String(repeating: "p", count: 200_000))]
                let task = try await deployment.client.submit(cluster: "c1",
                    SubmitTaskRequest(type: "fail", participatingNodes: ["n1", "n2", "n3"], payload: payload, maxAttempts: 3))
                let finished = try await deployment.finished(task.id)
                #expect(finished.task.state == .failed)
                #expect(finished.task.attempt == 3)
                let tree = try await deployment.client.tree(cluster: "c1", id: task.id)
                #expect(tree.count == 10, "the task and 3 × 3 outcomes")
                #expect(tree.dropFirst().allSatisfy { $0.payload == [:] }, "outcome rows refer to their parent's payload")
                let stored: Int = try await pool.withConnection { connection in
                    try connection.query("SELECT count(*) AS n FROM tasks WHERE payload ? 'blob'").single().decode("n")
                }
                #expect(stored == 1)

                let outcome = try #require(tree.last)
                for (method, path) in [("POST", "retry"), ("POST", "cancel"), ("DELETE", "")] {
                    let answer = try await APIContractTests.send(deployment, method,
                        "/api/v1/clusters/c1/tasks/\(outcome.id)" + (path.isEmpty ? "" : "/\(path)"))
                    #expect(answer.status == 409, "\(method) \(path)")
                    let error = try APIJSON.decode(ErrorBody.self, from: answer.body).error
                    #expect(error.code == "participant_outcome", "\(method) \(path)")
                    #expect(error.message.contains("task \(task.id)"))
                }
                #expect(try await deployment.client.tree(cluster: "c1", id: task.id).count == 10, "nothing was deleted")
                // The parent itself is retried as ever.
                #expect(try await deployment.client.retry(cluster: "c1", id: task.id).state == .queued)
            }
        }
    }
}
