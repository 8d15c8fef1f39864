import EmbeddedPostgres
import Foundation
import Postgres
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardTestSupport

@Suite("taskyard dev")
struct DevCommandTests {
    @Test("starts from nothing with auth on, answers /readyz, runs a task to completed, the CLI finds its token, and stops cleanly on Ctrl-C")
    func fromNothing() async throws {
        let binary = try #require(TestEnvironment.taskyardBinary, "the taskyard executable should be built next to the tests")
        let folder = URL(fileURLWithPath: "/tmp/taskyard-dev-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let ports = TestEnvironment.freePorts(5)
        let log = folder.appending(path: "dev.log").path
        let pid = try Subprocess.spawn(binary.path, [
            "dev", "--data-dir", folder.appending(path: ".taskyard").path, "--port", String(ports[0]),
            "--listen", "127.0.0.1:\(ports[1])", "--agent-port", String(ports[2]), "--log-level", "warning",
        ], outputPath: log)
        var stopped = false
        defer { if !stopped { kill(pid, SIGKILL) } }

        let anonymous = TaskyardClient(baseURL: "http://127.0.0.1:\(ports[1])")
        let deadline = ContinuousClock.now + .seconds(90)
        while (try? await anonymous.health("readyz")) != 200 {
            if let status = await Subprocess.wait(pid, timeout: .zero) {
                stopped = true
                Issue.record("taskyard dev exited with \(status): \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
                return
            }
            try #require(ContinuousClock.now < deadline, "no /readyz within 90 s")
            try await Task.sleep(for: .milliseconds(200))
        }
        // Auth is on: the admin token is in the data folder, readable by its owner only.
        let tokenFile = folder.appending(path: ".taskyard/admin-token").path
        let attributes = try FileManager.default.attributesOfItem(atPath: tokenFile)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let refused = try await #require(throws: TaskyardClient.Failure.self) { _ = try await anonymous.nodes(cluster: "dev") }
        #expect(refused.status == 401)
        let client = TaskyardClient(baseURL: anonymous.baseURL, token: token)
        // The agents register right after the server starts.
        try await eventually("the three agents register", within: deadline - .now) { try await client.nodes(cluster: "dev").count >= 3 }

        let task = try await client.submit(cluster: "dev", SubmitTaskRequest(type: "echo", participatingNodes: ["n1", "n2", "n3"],
                                                                             payload: ["name": "vol1"]))
        var detail = try await client.task(cluster: "dev", id: task.id)
        try await eventually("the task ends", within: deadline - .now) {
            detail = try await client.task(cluster: "dev", id: task.id)
            return detail.task.state.isTerminal
        }
        #expect(detail.task.state == .completed)
        #expect(detail.task.participants.map(\.state) == [.completed, .completed, .completed])
        // Run from the folder holding .taskyard, the command line finds the admin token by itself.
        let listed = try await TestEnvironment.runTaskyardAsync(["task", "list", "--cluster", "dev", "--server", anonymous.baseURL],
                                                                environment: ["TASKYARD_TOKEN": ""], in: folder)
        #expect(listed.status == 0 && listed.output.contains("echo"), "\(listed.output)")

        // PostgreSQL asks for the password kept beside the tokens, over TCP and over its socket alike.
        let passwordFile = folder.appending(path: ".taskyard/postgres-password").path
        #expect((try FileManager.default.attributesOfItem(atPath: passwordFile)[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let password = try String(contentsOfFile: passwordFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        for host in ["127.0.0.1", folder.appending(path: ".taskyard/run").path] {
            var parameters = ["host": host, "port": String(ports[0]), "user": "postgres", "dbname": "taskyard"]
            await #expect(throws: (any Error).self, "\(host) let a connection in without the password") {
                let connection = try await PostgresConnection.connect(PostgresConfiguration(parameters: parameters))
                await connection.close()
            }
            parameters["password"] = password
            let connection = try await PostgresConnection.connect(PostgresConfiguration(parameters: parameters))
            await connection.close()
        }

        kill(pid, SIGINT)
        let status = await Subprocess.wait(pid, timeout: .seconds(30))
        stopped = status != nil
        #expect(status == 0)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(output.contains("Taskyard dev is up"))
        #expect(output.contains("stopped; the data stays"))
        #expect(!FileManager.default.fileExists(atPath: folder.appending(path: ".taskyard/postgres/postmaster.pid").path),
                "PostgreSQL should be stopped")
    }
}
