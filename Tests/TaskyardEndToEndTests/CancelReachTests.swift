import Foundation
import Testing
import TaskyardAPI
import TaskyardDomain
import TaskyardTestSupport

@Suite("Cancels reach every participant at once")
struct CancelReachTests {
    /// The pids the handlers of n1 and n2 wrote (their working child's), as far as they have.
    static func handlerPIDs(in folder: URL) -> [Int32] {
        ["n1", "n2"].compactMap { node in
            (try? String(contentsOf: folder.appending(path: node), encoding: .utf8))
                .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    /// Running, not a zombie waiting to be reaped (a container's first process may never reap orphans).
    static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    @Test("a cancel stops the initiator's own handler and a remote participant's, whole process groups, and the task is cancelled within 2 s")
    func cancelStopsEveryHandler() async throws {
        let pids = FileManager.default.temporaryDirectory.appending(path: "taskyard-pids-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: pids, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: pids) }
        // A shell whose child does the work and ignores nothing: only a signal to the whole group stops the
        // child when the shell goes first.
        let folder = try TestEnvironment.makeExecutables([
            "slow": "#!/bin/sh\ncat > /dev/null\nsleep 8 &\necho $! > \(pids.path)/$TASKYARD_NODE\nwait\n",
        ])
        defer { try? FileManager.default.removeItem(at: folder) }
        try await Deployment.run(nodes: ["n1", "n2"], agentSettings: { $0.handlersDirectory = folder }) { deployment in
            let task = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "slow", participatingNodes: ["n1", "n2"]))
            var running: [Int32] = []
            try await eventually("both handlers start", within: .seconds(10)) {
                running = Self.handlerPIDs(in: pids)
                return running.count == 2
            }
            let clock = ContinuousClock()
            let asked = clock.now
            _ = try await deployment.client.cancel(cluster: "c1", id: task.id, reason: "changed my mind")
            try await eventually("the task is reported cancelled", within: .seconds(5)) {
                try await deployment.client.task(cluster: "c1", id: task.id).task.state == .cancelled
            }
            let cancelledAfter = clock.now - asked
            #expect(cancelledAfter < .seconds(2), "reported cancelled after \(cancelledAfter)")
            try await eventually("the handler processes end", within: .seconds(5)) { running.allSatisfy { !Self.isRunning($0) } }
            #expect(clock.now - asked < .seconds(2.5), "handlers gone after \(clock.now - asked)")
        }
    }

    @Test("timeout_seconds: 2 on a 10 s handler: the attempt fails \"timed out after 2 s\" and the handler's processes are gone")
    func executionTimeout() async throws {
        let pids = FileManager.default.temporaryDirectory.appending(path: "taskyard-pids-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: pids, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: pids) }
        let folder = try TestEnvironment.makeExecutables([
            "long": "#!/bin/sh\nsleep 10 &\necho $! > \(pids.path)/$TASKYARD_NODE\ncat > /dev/null\nwait\n",
        ])
        defer { try? FileManager.default.removeItem(at: folder) }
        try await Deployment.run(nodes: ["n1", "n2"], agentSettings: { $0.handlersDirectory = folder }) { deployment in
            let clock = ContinuousClock()
            let started = clock.now
            let task = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "long", participatingNodes: ["n1", "n2"], maxAttempts: 1, timeoutSeconds: 2))
            #expect(task.timeoutSeconds == 2)
            let finished = try await deployment.finished(task.id, within: .seconds(8))
            #expect(finished.task.state == .failed)
            #expect(finished.task.error?.contains("timed out after 2 s") == true, "\(finished.task.error ?? "")")
            #expect(clock.now - started < .seconds(5), "ended after \(clock.now - started)")
            // Each participant whose handler started before the timeout (on a loaded machine one may not
            // have: then it never runs) has its processes gone.
            let handlers = Self.handlerPIDs(in: pids)
            #expect((1...2).contains(handlers.count), "\(handlers)")
            try await eventually("the handler processes end", within: .seconds(8)) { handlers.allSatisfy { !Self.isRunning($0) } }
        }
    }
}
