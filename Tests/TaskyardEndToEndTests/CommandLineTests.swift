import Foundation
import Testing
import TaskyardAPI
import TaskyardTestSupport

@Suite("The taskyard command against a running server")
struct CommandLineTests {
    @Test("task submit, list, show and events print what a person needs; --json prints the API's JSON")
    func taskCommands() async throws {
        try await Deployment.run { deployment in
            func taskyard(_ arguments: String...) async throws -> String {
                let run = try await TestEnvironment.runTaskyardAsync(arguments + ["--server", deployment.serverURL], environment: deployment.cliEnvironment)
                #expect(run.status == 0, "taskyard \(arguments.joined(separator: " ")): \(run.output)")
                return run.output
            }
            let submitted = try await taskyard("task", "submit", "fail", "--nodes", "n1,n2", "--cluster", "c1",
                                               "--payload", #"{"message": "disk full"}"#, "--max-attempts", "1")
            #expect(submitted.contains("task 1 queued, assigned to n1"))
            _ = try await deployment.finished(1)

            let list = try await taskyard("task", "list", "--cluster", "c1")
            let lines = list.split(separator: "\n").map(String.init)
            #expect(lines.first?.hasPrefix("Task ID  State   Assigned To  Type  Created") == true, "\(list)")
            #expect(lines.count == 2, "children are left out unless --children: \(list)")
            #expect(lines[1].contains("failed") && lines[1].contains("n1") && lines[1].hasSuffix("1/1"))

            let show = try await taskyard("task", "show", "1", "--cluster", "c1")
            #expect(show.contains("Task 1  fail  FAILED"))
            #expect(show.contains("error         n1: disk full; n2: disk full"))
            #expect(show.contains("Participants"))
            #expect(show.split(separator: "\n").filter { $0.contains("failed") && $0.contains("disk full") }.count == 2)

            let events = try await taskyard("task", "events", "1", "--cluster", "c1")
            #expect(events.contains("queued    received"))

            let json = try await taskyard("task", "show", "1", "--cluster", "c1", "--json")
            let detail = try APIJSON.decode(TaskDetail.self, from: Data(json.utf8))
            #expect(detail.task.state == .failed && detail.children.count == 2)

            let nodes = try await taskyard("node", "list", "--cluster", "c1")
            #expect(nodes.contains("n1    online"))
            let clusters = try await taskyard("cluster", "list")
            #expect(clusters.contains("c1"))

            let missing = try await TestEnvironment.runTaskyardAsync(["task", "show", "99", "--cluster", "c1",
                                                                       "--server", deployment.serverURL], environment: deployment.cliEnvironment)
            #expect(missing.status != 0)
            #expect(missing.output.contains("task 99 does not exist in cluster c1"))
        }
    }
}
