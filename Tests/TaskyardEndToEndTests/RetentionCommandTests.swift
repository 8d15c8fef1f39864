import Foundation
import Postgres
import Testing
import TaskyardAPI
import TaskyardServer
import TaskyardStore
import TaskyardTestSupport

@Suite("Retention, end to end")
struct RetentionCommandTests {
    @Test("taskyard task prune deletes old finished trees by hand; a server's retention does it by itself")
    func pruneAndRetention() async throws {
        try await Deployment.run(nodes: ["n1"], serverSettings: { configuration in
            configuration.retention.retention = .seconds(3600)
            configuration.retention.interval = .milliseconds(200)
        }) { deployment in
            var finished: [Int64] = []
            for _ in 0..<3 {
                let task = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
                _ = try await deployment.finished(task.id)
                finished.append(task.id)
            }
            func age(_ id: Int64, hours: Int) async throws {
                try await deployment.store.backdateFinish(of: id, by: .seconds(hours * 3600))
            }
            // Eight days old: past the CLI's cut-off below. Two hours old: past the server's one hour.
            try await age(finished[0], hours: 8 * 24)
            let database = deployment.store.pool.configuration.connectionString
            // The server's retention may get there first; either way the task is gone.
            let run = try await TestEnvironment.runTaskyardAsync(["task", "prune", "--older-than", "7d", "--database-url", database])
            #expect(run.status == 0, "\(run.output)")
            #expect(run.output.contains("older than 7d"))
            let gone = await #expect(throws: (any Error).self) { _ = try await deployment.client.task(cluster: "c1", id: finished[0]) }
            #expect(gone != nil)

            try await age(finished[1], hours: 2)
            try await eventually("the server's retention deletes the task") {
                (try? await deployment.client.task(cluster: "c1", id: finished[1])) == nil
            }
            #expect(try await deployment.client.task(cluster: "c1", id: finished[2]).task.state == .completed, "recent tasks stay")
        }
    }
}
