import Foundation
import Testing
import TaskyardAgent
import TaskyardAPI
import TaskyardDomain
import TaskyardTestSupport

@Suite("Executable handlers")
struct ExecutableHandlerTests {
    /// A handlers folder with one shell script per task type.
    static func makeHandlers() throws -> URL {
        try TestEnvironment.makeExecutables([
            // Reads the payload from stdin and answers with it and its environment.
            "volume_create": #"""
                #!/bin/sh
                payload=$(cat)
                printf '{"received": %s, "task": "%s", "attempt": "%s", "cluster": "%s", "node": "%s"}\n' \
                  "$payload" "$TASKYARD_TASK_ID" "$TASKYARD_ATTEMPT" "$TASKYARD_CLUSTER" "$TASKYARD_NODE"
                """#,
            "quiet": "#!/bin/sh\ncat > /dev/null\nexit 0\n",
            "broken": "#!/bin/sh\necho 'checking disk' >&2\necho 'disk /dev/sdz not found' >&2\nexit 3\n",
            "chatty": "#!/bin/sh\necho 'all done, no JSON here'\n",
        ])
    }

    @Test("success with JSON, success with no output, a non-zero exit, output that is not JSON")
    func outcomes() async throws {
        let folder = try Self.makeHandlers()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await Deployment.run(nodes: ["n1", "n2"], agentSettings: { $0.handlersDirectory = folder }) { deployment in
            let cluster = Deployment.cluster
            let json = try await deployment.client.submit(cluster: cluster,
                SubmitTaskRequest(type: "volume_create", participatingNodes: ["n1", "n2"], payload: ["name": "vol1"]))
            let quiet = try await deployment.client.submit(cluster: cluster, SubmitTaskRequest(type: "quiet", participatingNodes: ["n2"]))
            let broken = try await deployment.client.submit(cluster: cluster, SubmitTaskRequest(type: "broken", participatingNodes: ["n1"], maxAttempts: 1))
            let chatty = try await deployment.client.submit(cluster: cluster, SubmitTaskRequest(type: "chatty", participatingNodes: ["n1"], maxAttempts: 1))

            let created = try await deployment.finished(json.id)
            #expect(created.task.state == .completed)
            let n2 = try #require(created.task.participants.first { $0.node == "n2" })
            #expect(n2.result == ["received": ["name": "vol1"], "task": .string(String(json.id)), "attempt": "1",
                                  "cluster": "c1", "node": "n2"])

            let silent = try await deployment.finished(quiet.id)
            #expect(silent.task.state == .completed)
            #expect(silent.task.participants.first?.result == nil)

            let failed = try await deployment.finished(broken.id)
            #expect(failed.task.state == .failed)
            #expect(failed.task.error?.contains("exited with status 3") == true)
            #expect(failed.task.error?.contains("disk /dev/sdz not found") == true, "\(failed.task.error ?? "")")

            let noJSON = try await deployment.finished(chatty.id)
            #expect(noJSON.task.state == .failed)
            #expect(noJSON.task.error?.contains("not JSON") == true)
        }
    }

    @Test("a folder named as a type is no handler, and a handler that cannot start is named by its type, never by its path")
    func noPathsInErrors() async throws {
        let folder = try TestEnvironment.makeExecutables(["nostart": "#!/nonexistent/interpreter\n"])
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder.appending(path: "folder"), withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o755])
        try await Deployment.run(nodes: ["n1"], agentSettings: { $0.handlersDirectory = folder }) { deployment in
            for type in ["nostart", "folder"] {
                let task = try await deployment.client.submit(cluster: Deployment.cluster,
                    SubmitTaskRequest(type: type, participatingNodes: ["n1"], maxAttempts: 1))
                let finished = try await deployment.finished(task.id)
                #expect(finished.task.state == .failed)
                let error = finished.task.error ?? ""
                #expect(!error.contains(folder.path) && !error.contains("/tmp"), "\(type): \(error)")
                if type == "nostart" { #expect(error.contains("cannot start the handler of type nostart"), "\(error)") }
                if type == "folder" { #expect(!error.contains("cannot start"), "a folder is not run: \(error)") }
            }
        }
    }
}
