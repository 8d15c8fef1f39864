import Foundation
import Postgres
import Testing
import TaskyardAPI
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

@Suite("Participant outcomes")
struct ParticipantOutcomeTests {
    @Test("outcomes are rows of task_participants, not tasks: the task object shows each node's latest, the participants route every attempt's")
    func outcomesAreRecords() async throws {
        try await TestDatabase.withPool { pool in
            var configuration = TaskStore.Configuration()
            configuration.retry = RetryPolicy(base: .seconds(0.05), cap: .seconds(0.1))
            try await Deployment.run(on: TaskStore(pool: pool, configuration: configuration)) { deployment in
                // 200 KB of payload on three nodes, failing three times: nine outcomes, one task row.
                let payload: RawJSON = ["blob": .string(String(repeating: "p", count: 200_000))]
                let task = try await deployment.client.submit(cluster: "c1",
                    SubmitTaskRequest(type: "fail", participatingNodes: ["n1", "n2", "n3"], payload: payload, maxAttempts: 3))
                #expect(task.participants.map(\.node) == ["n1", "n2", "n3"])
                #expect(task.participants.allSatisfy { $0.state == .pending && $0.attempt == 0 && $0.result == nil && !$0.decided })
                let finished = try await deployment.finished(task.id)
                #expect(finished.task.state == .failed)
                #expect(finished.task.attempt == 3)
                #expect(finished.children.isEmpty, "outcomes are not children")
                #expect(try await deployment.client.tree(cluster: "c1", id: task.id).count == 1)
                let latest = finished.task.participants
                #expect(latest.map(\.node) == ["n1", "n2", "n3"])
                #expect(latest.allSatisfy { $0.attempt == 3 && $0.state == .failed && $0.finishedAt != nil }, "\(latest)")
                #expect(latest.allSatisfy { $0.error?.contains("fail") == true }, "\(latest)")
                #expect(latest.filter(\.decided).count == 1, "the first failure decides under `all`")

                let counts: (tasks: Int, outcomes: Int) = try await pool.withConnection { connection in
                    (try connection.query("SELECT count(*) AS n FROM tasks").single().decode("n"),
                     try connection.query("SELECT count(*) AS n FROM task_participants WHERE task_id = $1", [task.id]).single().decode("n"))
                }
                #expect(counts.tasks == 1 && counts.outcomes == 9)

                let all = try await Self.participants(deployment, task.id)
                #expect(all.status == 200)
                #expect(all.list?.participants.map(\.attempt) == [1, 1, 1, 2, 2, 2, 3, 3, 3], "oldest attempt first")
                #expect(all.list?.participants.prefix(3).map(\.node) == ["n1", "n2", "n3"])
                let second = try await Self.participants(deployment, task.id, query: "?attempt=2")
                #expect(second.list?.participants.map(\.attempt) == [2, 2, 2])
                #expect(try await Self.participants(deployment, task.id, query: "?attempt=0").status == 400)
                #expect(try await Self.participants(deployment, task.id + 1000).status == 404)

                // The list shows the same participants; a retry keeps the history; delete removes it.
                let listed = try await deployment.client.tasks(cluster: "c1", query: [:])
                #expect(listed.tasks.first?.participants == latest)
                let path = "/api/v1/clusters/c1/tasks/\(task.id)/retry"
                let refused = try await APIContractTests.send(deployment, "POST", path, body: #"{"participants": "some"}"#)
                #expect(refused.status == 422)
                #expect(try APIJSON.decode(ErrorBody.self, from: refused.body).error.field == "participants")
                let answer = try await APIContractTests.send(deployment, "POST", path, body: #"{"participants": "all"}"#)
                #expect(answer.status == 200)
                let retried = try APIJSON.decode(TaskObject.self, from: answer.body)
                #expect(retried.state == .queued && retried.participants == latest, "a queued task shows the last outcomes until it runs again")
                _ = try await deployment.finished(task.id)
                try await deployment.client.delete(cluster: "c1", id: task.id)
                let left: Int = try await pool.withConnection { connection in
                    try connection.query("SELECT count(*) AS n FROM task_participants").single().decode("n")
                }
                #expect(left == 0)
            }
        }
    }

    @Test("a running task shows its participants running, and a completed one the outcome that decided it")
    func runningThenCompleted() async throws {
        try await Deployment.run { deployment in
            let task = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "sleep", participatingNodes: ["n1", "n2"], payload: ["seconds": 0.6]))
            let running = try await deployment.detail(task.id, until: "received") { $0.task.state == .received }
            #expect(running.task.participants.allSatisfy { $0.state == .running && $0.attempt == 1 && $0.startedAt != nil })
            let done = try await deployment.finished(task.id)
            #expect(done.task.state == .completed)
            #expect(done.task.participants.allSatisfy { $0.state == .completed && $0.attempt == 1 })
            #expect(done.task.participants.filter(\.decided).count == 1)
            let decider = try #require(done.task.participants.first { $0.decided })
            #expect(done.task.participants.allSatisfy { ($0.finishedAt ?? .distantPast) <= (decider.finishedAt ?? .distantFuture) },
                    "under `all` the last success decides")
        }
    }

    static func participants(_ deployment: Deployment, _ id: Int64, query: String = "") async throws -> (status: Int, list: ParticipantList?) {
        let answer = try await APIContractTests.send(deployment, "GET", "/api/v1/clusters/c1/tasks/\(id)/participants\(query)")
        return (answer.status, answer.status == 200 ? try APIJSON.decode(ParticipantList.self, from: answer.body) : nil)
    }
}
