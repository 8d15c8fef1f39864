import Foundation
import Testing
import TaskyardAgent
import TaskyardAPI
import TaskyardDomain
import TaskyardTestSupport

@Suite("Progress")
struct ProgressTests {
    /// JSON has one kind of number: 2 and 2.0 are the same progress.
    static func number(_ value: JSONValue?) -> Double? {
        switch value {
        case .integer(let number)?: Double(number)
        case .double(let number)?: number
        default: nil
        }
    }

    @Test("while a task runs, its progress (participants done out of all) shows through the API and the CLI")
    func participantsDone() async throws {
        // n3's part waits until the test has seen the progress, however slow the machine.
        let (release, releaser) = AsyncStream<Void>.makeStream()
        try await Deployment.run(handlers: { node in
            var registry = HandlerRegistry.builtins()
            registry.register("resync", ClosureHandler { _ in
                if node == "n3" { for await _ in release { break } }
                return nil
            })
            return registry
        }, agentSettings: { $0.heartbeatInterval = .milliseconds(200) }) { deployment in
            let task = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "resync", participatingNodes: ["n1", "n2", "n3"]))
            try await eventually("two of three participants are reported done", within: .seconds(10)) {
                Self.number(try await deployment.client.task(cluster: "c1", id: task.id).task.progress?["completed"]) == 2
            }
            let running = try await deployment.client.task(cluster: "c1", id: task.id).task
            #expect(running.state == .received)
            #expect(Self.number(running.progress?["completed"]) == 2)
            #expect(Self.number(running.progress?["total"]) == 3)
            #expect(running.progress?["units"] == "participants")
            let show = try await TestEnvironment.runTaskyardAsync(["task", "show", String(task.id), "--cluster", "c1",
                                                                   "--server", deployment.serverURL], environment: deployment.cliEnvironment)
            #expect(show.output.contains("progress      [#############-------]  2/3 participants"), "\(show.output)")
            releaser.yield()
            #expect(try await deployment.finished(task.id).task.state == .completed)
        }
    }

    @Test("handlers report their own progress: an executable by stderr lines, a Swift handler by a call")
    func handlersReport() async throws {
        let folder = try TestEnvironment.makeExecutables([
            "reindex": "#!/bin/sh\ncat > /dev/null\necho 'progress 3 4' >&2\nsleep 4\necho '{}'\n",
        ])
        defer { try? FileManager.default.removeItem(at: folder) }
        try await Deployment.run(handlers: { _ in
            var registry = HandlerRegistry.builtins(directory: folder)
            registry.register("scrub", ClosureHandler { work in
                work.progress(completed: 1, total: 2)
                try await Task.sleep(for: .seconds(4))
                return nil
            })
            return registry
        }, agentSettings: { $0.heartbeatInterval = .milliseconds(200) }) { deployment in
            let executable = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "reindex", participatingNodes: ["n1", "n2"]))
            let swift = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "scrub", participatingNodes: ["n2", "n3"]))
            // Two participants three quarters through: 1.5 of 2; two halfway: 1 of 2.
            try await eventually("the executables' progress shows", within: .seconds(10)) {
                Self.number(try await deployment.client.task(cluster: "c1", id: executable.id).task.progress?["completed"]) == 1.5
            }
            try await eventually("the Swift handlers' progress shows", within: .seconds(10)) {
                Self.number(try await deployment.client.task(cluster: "c1", id: swift.id).task.progress?["completed"]) == 1
            }
            #expect(try await deployment.finished(executable.id).task.state == .completed)
            #expect(try await deployment.finished(swift.id).task.state == .completed)
        }
    }
}
