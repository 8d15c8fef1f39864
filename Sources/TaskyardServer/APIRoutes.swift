import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TaskyardAPI
import TaskyardDomain
import TaskyardStore

/// The handlers of every API route, over one store.
struct APIRoutes: Sendable {
    let store: TaskStore
    let credentials: CredentialStore
    let authenticator: Authenticator
    let grants: GrantIssuer
    let configuration: ServerConfiguration
    let maintenance: MaintenanceLeader
    let wakeups: Wakeups
    let metrics: ServerMetrics
    /// Where history reads may go instead of the primary.
    let replica: ReadReplica?
    /// Change streams and waits held open, per token.
    let streams = StreamSlots()

    /// One route of the contract, with who may call it.
    struct Route: Sendable {
        let method: HTTPRequest.Method
        let path: String
        let access: Access
        /// Gets the caller's token only where the route's answer depends on more than the path (token
        /// management, the cluster list); nil on open routes.
        let handler: @Sendable (inout Request, TaskyardRequestContext, APIToken?) async throws -> Response
    }

    /// Every route of the contract.
    func routes() -> [Route] {
        var all: [Route] = []
        func route(_ method: HTTPRequest.Method, _ path: String, _ access: Access,
                   _ handler: @escaping @Sendable (inout Request, TaskyardRequestContext, APIToken?) async throws -> Response) {
            all.append(Route(method: method, path: path, access: access, handler: handler))
        }
        route(.get, "/healthz", .open) { _, _, _ in
            try jsonResponse(HealthBody(status: "ok", maintenanceLeader: maintenance.isLeader))
        }
        route(.get, "/readyz", .open) { _, _, _ in try await ready() }
        route(.get, "/openapi.json", .open) { _, _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
        }

        // The dashboard's files: open (they hold no data; the page asks for a token and calls the API with it).
        for (path, asset) in DashboardAsset.all {
            route(.get, path, .open) { _, _, _ in asset.response() }
        }

        // A token bound to a cluster sees that cluster's series only.
        route(.get, "/metrics", .client(.read)) { _, _, caller in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: try await metrics.exposition(cluster: caller!.clusterID))))
        }

        route(.post, "/api/v1/tokens", .client(.admin)) { request, context, caller in try await createToken(&request, caller!) }
        route(.get, "/api/v1/tokens", .client(.admin)) { _, _, caller in try await listTokens(caller!) }
        route(.delete, "/api/v1/tokens/:token_id", .client(.admin)) { _, context, caller in try await revokeToken(context, caller!) }

        route(.post, "/api/v1/clusters", .client(.admin)) { request, context, caller in try await createCluster(&request, caller!) }
        route(.get, "/api/v1/clusters", .client(.read)) { _, _, caller in try await listClusters(caller!) }
        route(.put, "/api/v1/clusters/:cluster_id/nodes/:node_id", .pathNode) { request, context, _ in try await registerNode(&request, context) }
        route(.get, "/api/v1/clusters/:cluster_id/nodes", .clientOrClusterNode(.read)) { _, context, _ in try await listNodes(context) }
        route(.get, "/api/v1/clusters/:cluster_id/signing-keys", .clientOrClusterNode(.read)) { _, context, _ in try await signingKeys(context) }
        route(.post, "/api/v1/clusters/:cluster_id/signing-keys", .client(.admin)) { _, context, _ in try await rotateSigningKey(context) }
        route(.delete, "/api/v1/clusters/:cluster_id/signing-keys/:key_id", .client(.admin)) { _, context, _ in try await retireSigningKey(context) }

        route(.post, "/api/v1/clusters/:cluster_id/tasks", .client(.submit)) { request, context, _ in try await submit(&request, context) }
        route(.post, "/api/v1/clusters/:cluster_id/tasks/batch", .client(.submit)) { request, context, _ in try await submitBatch(&request, context) }
        route(.get, "/api/v1/clusters/:cluster_id/tasks", .client(.read)) { request, context, caller in try await listTasks(request, context, caller) }
        route(.get, "/api/v1/clusters/:cluster_id/tasks/:task_id", .client(.read)) { _, context, caller in try await getTask(context, caller) }
        route(.get, "/api/v1/clusters/:cluster_id/tasks/:task_id/events", .client(.read)) { request, context, caller in try await events(request, context, caller) }
        route(.get, "/api/v1/clusters/:cluster_id/tasks/:task_id/participants", .client(.read)) { request, context, caller in try await participants(request, context, caller) }
        route(.get, "/api/v1/clusters/:cluster_id/tasks/:task_id/tree", .client(.read)) { request, context, caller in try await tree(request, context, caller) }
        route(.get, "/api/v1/clusters/:cluster_id/stats", .client(.read)) { request, context, _ in try await stats(request, context) }
        route(.get, "/api/v1/clusters/:cluster_id/changes", .client(.read)) { request, context, caller in try await changes(request, context, caller!) }
        route(.get, "/api/v1/clusters/:cluster_id/tasks/:task_id/wait", .client(.read)) { request, context, caller in try await wait(request, context, caller!) }
        route(.post, "/api/v1/clusters/:cluster_id/tasks/:task_id/cancel", .client(.operate)) { request, context, _ in try await cancel(&request, context) }
        route(.post, "/api/v1/clusters/:cluster_id/tasks/:task_id/retry", .client(.operate)) { request, context, _ in try await retry(&request, context) }
        route(.delete, "/api/v1/clusters/:cluster_id/tasks/:task_id", .client(.operate)) { _, context, _ in try await delete(context) }

        route(.post, "/api/v1/clusters/:cluster_id/schedules", .client(.operate)) { request, context, _ in try await createSchedule(&request, context) }
        route(.get, "/api/v1/clusters/:cluster_id/schedules", .client(.read)) { request, context, _ in try await listSchedules(request, context) }
        route(.get, "/api/v1/clusters/:cluster_id/schedules/:schedule_id", .client(.read)) { _, context, _ in try await getSchedule(context) }
        route(.put, "/api/v1/clusters/:cluster_id/schedules/:schedule_id", .client(.operate)) { request, context, _ in
            try await replaceSchedule(&request, context)
        }
        route(.delete, "/api/v1/clusters/:cluster_id/schedules/:schedule_id", .client(.operate)) { _, context, _ in try await deleteSchedule(context) }
        route(.post, "/api/v1/clusters/:cluster_id/schedules/:schedule_id/pause", .client(.operate)) { _, context, _ in
            try await pauseSchedule(context, paused: true)
        }
        route(.post, "/api/v1/clusters/:cluster_id/schedules/:schedule_id/resume", .client(.operate)) { _, context, _ in
            try await pauseSchedule(context, paused: false)
        }

        route(.post, "/api/v1/clusters/:cluster_id/webhooks", .client(.admin)) { request, context, _ in try await createWebhook(&request, context) }
        route(.get, "/api/v1/clusters/:cluster_id/webhooks", .client(.admin)) { request, context, _ in try await listWebhooks(request, context) }
        route(.get, "/api/v1/clusters/:cluster_id/webhooks/:webhook_id", .client(.admin)) { _, context, _ in try await getWebhook(context) }
        route(.delete, "/api/v1/clusters/:cluster_id/webhooks/:webhook_id", .client(.admin)) { _, context, _ in try await deleteWebhook(context) }
        route(.get, "/api/v1/clusters/:cluster_id/webhooks/:webhook_id/deliveries", .client(.admin)) { request, context, _ in
            try await listDeliveries(request, context)
        }
        route(.post, "/api/v1/clusters/:cluster_id/webhooks/:webhook_id/deliveries/:delivery_id/resend", .client(.admin)) { _, context, _ in
            try await resendDelivery(context)
        }

        route(.get, "/api/v1/tasks/:cluster_id/:node_id", .pathNode) { request, context, _ in try await poll(request, context) }
        route(.post, "/api/v1/tasks/:cluster_id/:node_id/heartbeat", .pathNode) { request, context, _ in try await heartbeat(&request, context) }
        route(.post, "/api/v1/tasks/:cluster_id/:node_id/states", .pathNode) { request, context, _ in try await reportBatch(&request, context) }
        route(.post, "/api/v1/tasks/:cluster_id/:node_id/scrape-check", .pathNode) { request, context, _ in
            try await scrapeCheck(&request, context)
        }
        route(.post, "/api/v1/tasks/:cluster_id/:node_id/:task_id/rollback-grants", .pathNode) { request, context, _ in
            try await rollbackGrants(&request, context)
        }
        route(.post, "/api/v1/tasks/:cluster_id/:node_id/:task_id/state", .pathNode) { request, context, _ in try await report(&request, context) }
        return all
    }

    /// A request body as `T`, within the body limit. A body nesting far deeper than any value may is
    /// refused whole before decoding; values a little too deep are refused field by field after it (so a
    /// report batch refuses only the item at fault).
    /// The history reads for `caller`: a fresh standby's, when there is one and the caller has not just
    /// written; else the primary's.
    func reads(_ caller: APIToken?) -> TaskReads {
        replica?.reads(for: caller, primary: store.reads) ?? store.reads
    }

    func decode<T: Decodable>(_ type: T.Type, _ request: inout Request) async throws -> T {
        try await request.decodeJSON(type, limit: configuration.maximumBodyBytes,
                                     maximumDepth: store.configuration.limits.jsonDepth + 64)
    }

    /// Ready when, within a second, a pooled connection can be had, the migrations are applied and the
    /// tasks table can be read (not locked away by a migration or a manual LOCK).
    private func ready() async throws -> Response {
        let store = self.store
        let outcome = await withTaskGroup(of: Result<[String], any Error>?.self) { group in
            group.addTask {
                do {
                    let pending = try await store.maintenance.pendingMigrations()
                    if pending.isEmpty { try await store.maintenance.probeTasks() }
                    return .success(pending)
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(1))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        var error: APIError
        switch outcome {
        case .success(let pending) where pending.isEmpty:
            return try jsonResponse(["status": "ready"])
        case .success(let pending):
            error = APIError(.serviceUnavailable, code: .notMigrated,
                             message: "the database lacks migrations \(pending.joined(separator: ", ")); run taskyard migrate")
        case .failure:
            error = APIError(.serviceUnavailable, code: .databaseUnavailable, message: "the database cannot be reached or read")
        case nil:
            error = APIError(.serviceUnavailable, code: .databaseUnavailable,
                             message: "no database connection could be had and used within a second")
        }
        error.headers[.retryAfter] = "1"
        throw error
    }
}

// MARK: - Path and query parameters

extension TaskyardRequestContext {
    /// A cluster or node id from the path. One that breaks the id rules names nothing: 404, as for an id
    /// that could exist but does not.
    func pathIdentifier(_ name: String) throws -> String {
        guard let value = parameters.get(name) else { throw APIError.badRequest("missing \(name)") }
        guard Identifier.isValid(value) else {
            let (what, code): (String, ErrorCode) = switch name {
            case "node_id": ("node", .nodeNotFound)
            case "schedule_id": ("schedule", .scheduleNotFound)
            default: ("cluster", .clusterNotFound)
            }
            throw APIError(.notFound, code: code, message: "no \(what) has the id \(String(reflecting: String(value.prefix(80))))")
        }
        return value
    }

    /// A task id from the path; anything but a positive integer names no task.
    func taskID(cluster: String) throws -> Int64 {
        try positiveID("task_id", naming: "task", code: .taskNotFound, cluster: cluster)
    }

    /// A numeric id from the path (tasks, webhooks, deliveries); anything but a positive integer names
    /// nothing: 404 with `code`.
    func positiveID(_ name: String, naming what: String, code: ErrorCode, cluster: String) throws -> Int64 {
        guard let text = parameters.get(name), let id = Int64(text), id > 0 else {
            throw APIError(.notFound, code: code,
                           message: "\(what) \(String(reflecting: String((parameters.get(name) ?? "").prefix(80)))) does not exist in cluster \(cluster)")
        }
        return id
    }
}

extension Request {
    /// A query parameter given with no value (`?until=`) is a mistake to point out, not a filter to drop.
    func rejectEmptyQueryValues() throws {
        for (name, value) in uri.queryParameters where value.isEmpty {
            throw APIError.badRequest("\(name) has no value", field: String(name))
        }
    }

    func query(_ name: String) -> String? {
        uri.queryParameters.get(name).flatMap { $0.isEmpty ? nil : $0 }
    }

    func queryInt(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text = query(name) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw APIError.badRequest("\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)", field: name)
        }
        return value
    }

    func queryDouble(_ name: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let text = query(name) else { return nil }
        guard let value = Double(text), range.contains(value) else {
            throw APIError.badRequest("\(name) must be a number from \(range.lowerBound) to \(range.upperBound)", field: name)
        }
        return value
    }

    func queryDate(_ name: String) throws -> Date? {
        guard let text = query(name) else { return nil }
        guard let date = RFC3339.parse(text) else {
            throw APIError.badRequest("\(name) must be an RFC 3339 time such as 2026-11-23T10:15:30Z", field: name)
        }
        return date
    }
}

/// `GET /healthz`: the process is up; `maintenance_leader` says whether this replica runs the duties.
struct HealthBody: Encodable {
    let status: String
    let maintenanceLeader: Bool
    enum CodingKeys: String, CodingKey { case status, maintenanceLeader = "maintenance_leader" }
}
