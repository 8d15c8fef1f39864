import Foundation
import Synchronization
import Testing
import TaskyardAgent
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardTestSupport

@Suite("Task trees and cancellation")
struct TreeAndCancelTests {
    @Test("a tree three levels deep: listed breadth first, drawn by the CLI, cancelled with all its descendants")
    func threeLevels() async throws {
        // No agents: every task stays queued until cancelled.
        try await Deployment.run(nodes: []) { deployment in
            for node in ["n1", "n2", "n3"] {
                _ = try await deployment.client.registerNode(cluster: "c1", node: node, RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            }
            let root = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "backup", participatingNodes: ["n1"]))
            let child = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "snapshot", participatingNodes: ["n2"], parentID: root.id))
            let sibling = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "snapshot", participatingNodes: ["n3"], parentID: root.id))
            let grandchild = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "copy", participatingNodes: ["n3"], parentID: child.id))
            let pinned = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "copy", participatingNodes: ["n3"], parentID: child.id, abortable: false))

            let tree = try await deployment.client.tree(cluster: "c1", id: root.id)
            #expect(tree.map(\.id) == [root.id, child.id, sibling.id, grandchild.id, pinned.id])
            #expect(tree.map(\.parentID) == [nil, root.id, root.id, child.id, child.id])

            let drawing = try await TestEnvironment.runTaskyardAsync(["task", "tree", String(root.id), "--cluster", "c1",
                                                                       "--server", deployment.serverURL], environment: deployment.cliEnvironment)
            let lines = drawing.output.split(separator: "\n").map(String.init)
            #expect(lines.count == 5, "\(drawing.output)")
            #expect(lines[0].hasPrefix("\(root.id) backup queued on n1"))
            #expect(lines[1].hasPrefix("├─ \(child.id) snapshot queued"))
            #expect(lines[2].hasPrefix("│  ├─ \(grandchild.id) copy queued"))
            #expect(lines[4].hasPrefix("└─ \(sibling.id) snapshot queued"))

            let cancelled = try await deployment.client.cancel(cluster: "c1", id: root.id, reason: "wrong volume")
            #expect(cancelled.state == .cancelled)
            let after = try await deployment.client.tree(cluster: "c1", id: root.id)
            let states = Dictionary(uniqueKeysWithValues: after.map { ($0.id, $0.state) })
            #expect([root.id, child.id, sibling.id, grandchild.id].allSatisfy { states[$0] == .cancelled })
            #expect(states[pinned.id] == .queued, "a task that is not abortable is left to run")
            let childEvent = try #require(try await deployment.client.events(cluster: "c1", id: grandchild.id).last)
            #expect(childEvent.detail == ["reason": "wrong volume", "cancelled_with": .integer(root.id)])

            // No new child under a cancelled task.
            let refused = await #expect(throws: TaskyardClient.Failure.self) {
                _ = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "copy", participatingNodes: ["n1"], parentID: root.id))
            }
            #expect(refused?.status == 422)
            #expect(refused?.error?.error.field == "parent_id")
            let again = await #expect(throws: TaskyardClient.Failure.self) {
                _ = try await deployment.client.cancel(cluster: "c1", id: root.id)
            }
            #expect(again?.status == 409)
            let notAbortable = await #expect(throws: TaskyardClient.Failure.self) {
                _ = try await deployment.client.cancel(cluster: "c1", id: pinned.id)
            }
            #expect(notAbortable?.error?.error.code.rawValue == "not_abortable")
        }
    }

    @Test("cancel a task running a 30 s handler on two participants: the handlers stop, the task and its children end cancelled")
    func cancelRunning() async throws {
        let stopped = Mutex<[String]>([])
        try await Deployment.run(handlers: { _ in
            var registry = HandlerRegistry.builtins()
            registry.register("long", ClosureHandler { work in
                do {
                    try await Task.sleep(for: .seconds(30))
                } catch {
                    stopped.withLock { $0.append(work.node) }
                    throw error
                }
                return nil
            })
            return registry
        }) { deployment in
            let task = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "long", participatingNodes: ["n1", "n2"]))
            try await eventually("the task runs") {
                try await deployment.client.task(cluster: "c1", id: task.id).task.state == .received
            }
            try await Task.sleep(for: .milliseconds(500))
            let clock = ContinuousClock()
            let asked = clock.now
            let flagged = try await deployment.client.cancel(cluster: "c1", id: task.id, reason: "not needed")
            #expect(flagged.state == .received && flagged.cancelRequested)
            let done = try await deployment.finished(task.id, within: .seconds(10))
            #expect(clock.now - asked < .seconds(5))
            #expect(done.task.state == .cancelled, "a cancelled task is never reported as completed")
            #expect(done.task.participants.count == 2)
            #expect(done.task.participants.allSatisfy { $0.state == .cancelled }, "\(done.task.participants)")
            try await eventually("both handlers stopped") { stopped.withLock { Set($0) } == ["n1", "n2"] }
        }
    }

    @Test("trees and events page with a cursor, breadth first and oldest first, and the client follows every page")
    func treesAndEventsPage() async throws {
        try await Deployment.run(nodes: []) { deployment in
            _ = try await deployment.client.registerNode(cluster: "c1", node: "n1", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            let root = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "backup", participatingNodes: ["n1"]))
            var children: [Int64] = []
            for _ in 0..<3 {
                children.append(try await deployment.client.submit(cluster: "c1",
                    SubmitTaskRequest(type: "snapshot", participatingNodes: ["n1"], parentID: root.id)).id)
            }
            var seen: [Int64] = []
            var after: String?
            var pages = 0
            repeat {
                let answer = try await APIContractTests.send(deployment, "GET",
                    "/api/v1/clusters/c1/tasks/\(root.id)/tree?limit=2" + (after.map { "&after=\($0)" } ?? ""))
                #expect(answer.status == 200)
                let page = try APIJSON.decode(TaskList.self, from: answer.body)
                #expect(page.tasks.count <= 2)
                seen += page.tasks.map(\.id)
                after = page.next
                pages += 1
            } while after != nil && pages < 10
            #expect(seen == [root.id] + children)
            #expect(pages == 2)
            #expect(try await deployment.client.tree(cluster: "c1", id: root.id).map(\.id) == [root.id] + children)

            _ = try await deployment.client.cancel(cluster: "c1", id: root.id)
            let first = try await APIContractTests.send(deployment, "GET", "/api/v1/clusters/c1/tasks/\(root.id)/events?limit=1")
            let page = try APIJSON.decode(EventList.self, from: first.body)
            #expect(page.events.map(\.to) == [.queued])
            let next = try #require(page.next)
            let rest = try APIJSON.decode(EventList.self, from: try await APIContractTests.send(deployment, "GET",
                "/api/v1/clusters/c1/tasks/\(root.id)/events?after=\(next)").body)
            #expect(rest.events.map(\.to) == [.cancelled])
            #expect(rest.next == nil)
            #expect(try await deployment.client.events(cluster: "c1", id: root.id).map(\.to) == [.queued, .cancelled])
            #expect(try await APIContractTests.send(deployment, "GET", "/api/v1/clusters/c1/tasks/\(root.id)/tree?after=x").status == 400)
        }
    }
}
