import Hummingbird
import ServiceLifecycle
import TaskyardAPI
import TaskyardDomain

extension APIRoutes {
    /// Claims up to `limit` tasks for the node. With `wait`, an empty answer is held back, re-checking,
    /// until work arrives or the wait ends. A poll is also the node's heartbeat.
    func poll(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let node = try context.pathIdentifier("node_id")
        let limit = try request.queryInt("limit", in: 1...1000) ?? 16
        let wait = try request.queryDouble("wait", in: 0...configuration.maximumPollWaitSeconds) ?? 0
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(Int(wait * 1000))
        try await store.recordHeartbeat(cluster: cluster, node: node)
        while true {
            let tasks = try await store.claim(cluster: cluster, node: node, limit: limit, leaseSeconds: configuration.leaseSeconds)
            let cancel = try await store.cancelRequested(cluster: cluster, node: node)
            // A server shutting down answers waiting polls now rather than holding its exit for them.
            if !tasks.isEmpty || !cancel.isEmpty || clock.now >= deadline || Task.isCancelled
                || Task.isShuttingDownGracefully {
                // The end of a long wait is a sign of life too, so that one slow poll never reads as a lost node.
                if wait > 0 { try await store.recordHeartbeat(cluster: cluster, node: node) }
                return try jsonResponse(PollResponse(tasks: tasks.map(TaskObject.init), cancel: cancel))
            }
            try await Task.sleep(for: min(configuration.pollRecheckInterval, deadline - clock.now))
        }
    }

    func heartbeat(_ request: inout Request, _ context: BasicRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let node = try context.pathIdentifier("node_id")
        let body = try await request.decodeJSON(HeartbeatRequest.self, limit: configuration.maximumBodyBytes)
        try await store.recordHeartbeat(cluster: cluster, node: node)
        let held = try body.tasks.enumerated().map { index, task in
            let progress: JSONValue? = try task.progress.map { progress in
                guard progress.completed >= 0, (progress.total ?? 0) >= 0 else {
                    throw APIError(.unprocessableContent, code: "invalid_field", message: "progress must not be negative",
                                   field: "tasks[\(index)].progress")
                }
                var object: [String: JSONValue] = ["completed": .double(progress.completed)]
                if let total = progress.total { object["total"] = .double(total) }
                if let units = progress.units { object["units"] = .string(units) }
                return .object(object)
            }
            return HeldTask(id: task.id, attempt: task.attempt, progress: progress)
        }
        let outcome = try await store.renewLeases(cluster: cluster, node: node, tasks: held, leaseSeconds: configuration.leaseSeconds)
        return try jsonResponse(HeartbeatResponse(cancel: outcome.cancel, lost: outcome.lost))
    }

    func report(_ request: inout Request, _ context: BasicRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let node = try context.pathIdentifier("node_id")
        let id = try context.taskID(cluster: cluster)
        let body = try await request.decodeJSON(StateReportRequest.self, limit: configuration.maximumBodyBytes)
        let task = try await store.report(body.report, cluster: cluster, node: node, taskID: id)
        return try jsonResponse(TaskObject(task))
    }
}
