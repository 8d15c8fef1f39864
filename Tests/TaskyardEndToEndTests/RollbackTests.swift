import Foundation
import Synchronization
import Testing
import TaskyardAgent
import TaskyardAPI
import TaskyardDomain
import TaskyardTestSupport

@Suite("Rollback")
struct RollbackTests {
    @Test("a failed fan-out rolls back the participants that succeeded, before reporting; the outcomes are recorded")
    func rollsBackSucceededParticipants() async throws {
        let rolledBack = Mutex<[String]>([])
        let folder = try TestEnvironment.makeExecutables([
            "mount": "#!/bin/sh\ncat > /dev/null\n[ \"$TASKYARD_NODE\" = n3 ] && { echo 'no such device' >&2; exit 1; }\necho '{\"mounted\": true}'\n",
            "mount.rollback": "#!/bin/sh\ncat > /dev/null\necho \"{\\\"unmounted\\\": \\\"$TASKYARD_NODE\\\"}\"\n",
        ])
        defer { try? FileManager.default.removeItem(at: folder) }
        try await Deployment.run(handlers: { _ in
            var registry = HandlerRegistry.builtins(directory: folder)
            registry.register("provision", ClosureHandler { work in
                if work.node == "n3" { throw HandlerFailure("quota exceeded") }
                return ["provisioned": .string(work.node)]
            })
            registry.registerRollback("provision", ClosureHandler { work in
                rolledBack.withLock { $0.append(work.node) }
                return ["released": .string(work.node)]
            })
            return registry
        }) { deployment in
            for type in ["provision", "mount", "echo"] {
                let payload: RawJSON = type == "echo" ? [:] : ["size": 1]
                let participants = type == "echo" ? ["n1", "n9"] : ["n1", "n2", "n3"]
                if type == "echo" {
                    _ = try await deployment.client.registerNode(cluster: "c1", node: "n9", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
                }
                let task = try await deployment.client.submit(cluster: "c1",
                    SubmitTaskRequest(type: type, participatingNodes: participants, payload: payload, maxAttempts: 1))
                let done = try await deployment.finished(task.id)
                #expect(done.task.state == .failed)
                let byNode = Dictionary(uniqueKeysWithValues: done.task.participants.map { ($0.node, $0) })
                let story = done.task.participants.map { "\($0.node): \($0.state.rawValue) \($0.error ?? "") \(String(describing: $0.result)) \(String(describing: $0.rollback))" }
                    .joined(separator: "; ")
                switch type {
                case "provision":
                    #expect(byNode["n1"]?.result == ["provisioned": "n1"], "\(story)")
                    #expect(byNode["n1"]?.rollback == ["state": "completed", "result": ["released": "n1"]], "\(story)")
                    #expect(byNode["n3"]?.state == .failed && byNode["n3"]?.result == nil)
                    #expect(done.task.error?.contains("rolled back on n1, n2") == true, "\(done.task.error ?? "")")
                case "mount":
                    #expect(byNode["n2"]?.rollback == ["state": "completed", "result": ["unmounted": "n2"]], "\(story)")
                default:
                    // echo declares no rollback: n1's outcome stays as it was.
                    #expect(byNode["n1"]?.result == [:] && byNode["n1"]?.rollback == nil)
                    #expect(done.task.error?.contains("rolled back") == false)
                }
            }
            #expect(rolledBack.withLock { $0.sorted() } == ["n1", "n2"])
        }
    }
}
