import EmbeddedPostgres
import Foundation
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardTestSupport

@Suite("taskyard dev")
struct DevCommandTests {
    @Test("starts from nothing, answers /readyz, runs a task to completed, and stops cleanly on Ctrl-C")
    func fromNothing() async throws {
        let binary = try #require(TestEnvironment.taskyardBinary, "the taskyard executable should be built next to the tests")
        let folder = URL(fileURLWithPath: "/tmp/taskyard-dev-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let ports = TestEnvironment.freePorts(5)
        let log = folder.appending(path: "dev.log").path
        let pid = try Subprocess.spawn(binary.path, [
            "dev", "--data-dir", folder.appending(path: "data").path, "--port", String(ports[0]),
            "--listen", "127.0.0.1:\(ports[1])", "--agent-port", String(ports[2]), "--log-level", "warning",
        ], outputPath: log)
        var stopped = false
        defer { if !stopped { kill(pid, SIGKILL) } }

        let client = TaskyardClient(baseURL: "http://127.0.0.1:\(ports[1])")
        let deadline = ContinuousClock.now + .seconds(90)
        while (try? await client.health("readyz")) != 200 {
            if let status = await Subprocess.wait(pid, timeout: .zero) {
                stopped = true
                Issue.record("taskyard dev exited with \(status): \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
                return
            }
            try #require(ContinuousClock.now < deadline, "no /readyz within 90 s")
            try await Task.sleep(for: .milliseconds(200))
        }
        // The agents register right after the server starts.
        while try await client.nodes(cluster: "dev").count < 3 {
            try #require(ContinuousClock.now < deadline, "agents did not register")
            try await Task.sleep(for: .milliseconds(100))
        }

        let task = try await client.submit(cluster: "dev", SubmitTaskRequest(type: "echo", participatingNodes: ["n1", "n2", "n3"],
                                                                             payload: ["name": "vol1"]))
        var detail = try await client.task(cluster: "dev", id: task.id)
        while !detail.task.state.isTerminal, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            detail = try await client.task(cluster: "dev", id: task.id)
        }
        #expect(detail.task.state == .completed)
        #expect(detail.children.count == 3)

        kill(pid, SIGINT)
        let status = await Subprocess.wait(pid, timeout: .seconds(30))
        stopped = status != nil
        #expect(status == 0)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(output.contains("Taskyard dev is up"))
        #expect(output.contains("stopped; the data stays"))
        #expect(!FileManager.default.fileExists(atPath: folder.appending(path: "data/postgres/postmaster.pid").path),
                "PostgreSQL should be stopped")
    }
}
