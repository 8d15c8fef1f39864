import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import TaskyardAPI
import TaskyardDomain

/// A typed client for every route of the Taskyard HTTP API.
public struct TaskyardClient: Sendable {
    /// `http://127.0.0.1:8080`: no trailing slash needed. Several replicas of one deployment may be named
    /// with commas between them (`http://s1:8080,http://s2:8080`): requests go to one until it cannot
    /// answer (no connection, or `503`), then to the next. The one in use now.
    public var baseURL: String { servers.current.url }
    /// Every server this client may use, in the order they are tried.
    public var serverURLs: [String] { servers.urls }
    private let servers: ServerList
    /// Longest a request may take; a poll's `wait` is added on top. Default 30 s.
    public var requestTimeout: Duration = .seconds(30)
    /// The bearer token sent with every request but health checks.
    public var token: String?
    public var transport: HTTPTransport

    public init(baseURL: String, token: String? = nil, transport: HTTPTransport = .shared) {
        servers = ServerList(baseURL)
        self.token = token
        self.transport = transport
    }

    /// An answer other than 2xx, with the contract's error body when the server sent one.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let status: Int
        public let error: ErrorBody?
        public let rawBody: String
        /// The server that answered.
        public var server = ""

        public init(status: Int, error: ErrorBody?, rawBody: String, server: String = "") {
            self.status = status
            self.error = error
            self.rawBody = rawBody
            self.server = server
        }

        public var description: String {
            if let error { return "\(error.error.message) (HTTP \(status), \(error.error.code))" }
            return "HTTP \(status): \(rawBody.prefix(300))"
        }
    }

    /// No answer from the server at all: not running, not reachable, the TLS handshake failed, or the
    /// answer did not come in time.
    public struct Unreachable: Error, Sendable, CustomStringConvertible {
        public let server: String
        public let reason: String

        public var description: String { "cannot reach the Taskyard server at \(server): \(reason)" }

        /// What a person can act on, from a transport error: NIO's own descriptions name errno values.
        static func reason(of error: any Error) -> String {
            let text = String(describing: error)
            if text.contains("errno: 111") || text.contains("Connection refused") { return "connection refused (nothing listens there)" }
            if text.contains("errno: 113") || text.contains("errno: 101") { return "no route to the host" }
            if let client = error as? HTTPClientError {
                switch client {
                case .connectTimeout, .deadlineExceeded, .readTimeout, .writeTimeout: return "no answer in time"
                case .remoteConnectionClosed: return "the server closed the connection"
                default: break
                }
            }
            if text.lowercased().contains("ssl") || text.lowercased().contains("tls") || text.contains("handshake") {
                return "the TLS handshake failed (\(text)); check --ca-file and that the URL's scheme is the server's"
            }
            if text.contains("getaddrinfo") || text.contains("lookup") { return "the host name does not resolve" }
            return text
        }
    }

    // MARK: - Clusters and nodes

    public func createCluster(id: String, name: String? = nil) async throws -> ClusterObject {
        try await send(.POST, ["api", "v1", "clusters"], body: CreateClusterRequest(id: id, name: name))
    }

    public func clusters() async throws -> [ClusterObject] {
        try await send(.GET, ["api", "v1", "clusters"], as: ClusterList.self).clusters
    }

    public func registerNode(cluster: String, node: String, _ registration: RegisterNodeRequest) async throws -> NodeObject {
        try await send(.PUT, ["api", "v1", "clusters", cluster, "nodes", node], body: registration)
    }

    public func nodes(cluster: String) async throws -> [NodeObject] {
        try await send(.GET, ["api", "v1", "clusters", cluster, "nodes"], as: NodeList.self).nodes
    }

    public func signingKeys(cluster: String) async throws -> [SigningKeyList.Key] {
        try await send(.GET, ["api", "v1", "clusters", cluster, "signing-keys"], as: SigningKeyList.self).keys
    }

    /// A new signing key for the cluster, which signs from now on (admin).
    public func rotateSigningKey(cluster: String) async throws -> SigningKeyList.Key {
        try await send(.POST, ["api", "v1", "clusters", cluster, "signing-keys"])
    }

    /// Retires a signing key: agents refuse its grants once they re-read the key list (admin).
    public func retireSigningKey(cluster: String, id: String) async throws {
        _ = try await raw(.DELETE, ["api", "v1", "clusters", cluster, "signing-keys", id])
    }

    // MARK: - Schedules

    public func createSchedule(cluster: String, _ request: ScheduleRequest) async throws -> ScheduleObject {
        try await send(.POST, ["api", "v1", "clusters", cluster, "schedules"], body: request)
    }

    public func schedules(cluster: String) async throws -> [ScheduleObject] {
        try await send(.GET, ["api", "v1", "clusters", cluster, "schedules"], as: ScheduleList.self).schedules
    }

    public func schedule(cluster: String, id: String) async throws -> ScheduleObject {
        try await send(.GET, ["api", "v1", "clusters", cluster, "schedules", id])
    }

    /// Pauses (`paused` true) or resumes a schedule.
    public func setSchedulePaused(_ paused: Bool, cluster: String, id: String) async throws -> ScheduleObject {
        try await send(.POST, ["api", "v1", "clusters", cluster, "schedules", id, paused ? "pause" : "resume"])
    }

    public func deleteSchedule(cluster: String, id: String) async throws {
        _ = try await raw(.DELETE, ["api", "v1", "clusters", cluster, "schedules", id])
    }

    // MARK: - Webhooks

    /// A new subscription; the answer's `secret` is shown only here (admin).
    public func createWebhook(cluster: String, _ request: WebhookRequest) async throws -> WebhookObject {
        try await send(.POST, ["api", "v1", "clusters", cluster, "webhooks"], body: request)
    }

    public func webhooks(cluster: String) async throws -> [WebhookObject] {
        try await send(.GET, ["api", "v1", "clusters", cluster, "webhooks"], as: WebhookList.self).webhooks
    }

    public func webhook(cluster: String, id: Int64) async throws -> WebhookObject {
        try await send(.GET, ["api", "v1", "clusters", cluster, "webhooks", String(id)])
    }

    public func deleteWebhook(cluster: String, id: Int64) async throws {
        _ = try await raw(.DELETE, ["api", "v1", "clusters", cluster, "webhooks", String(id)])
    }

    /// A page of the subscription's delivery log, newest first (`query`: status, limit, before).
    public func deliveries(cluster: String, webhook: Int64, query: [String: String] = [:]) async throws -> DeliveryList {
        try await send(.GET, ["api", "v1", "clusters", cluster, "webhooks", String(webhook), "deliveries"], query: query)
    }

    public func resendDelivery(cluster: String, webhook: Int64, delivery: Int64) async throws -> DeliveryObject {
        try await send(.POST, ["api", "v1", "clusters", cluster, "webhooks", String(webhook), "deliveries", String(delivery), "resend"])
    }

    // MARK: - Tokens

    /// A new token; the answer's `token` is the secret, shown only here.
    public func createToken(_ request: TokenRequest) async throws -> TokenObject {
        try await send(.POST, ["api", "v1", "tokens"], body: CreateTokenRequest(request))
    }

    public func tokens() async throws -> [TokenObject] {
        try await send(.GET, ["api", "v1", "tokens"], as: TokenList.self).tokens
    }

    public func revokeToken(id: Int64) async throws {
        _ = try await raw(.DELETE, ["api", "v1", "tokens", String(id)])
    }

    // MARK: - Tasks

    public func submit(cluster: String, _ request: SubmitTaskRequest, idempotencyKey: String? = nil,
                       opaqueID: String? = nil, traceparent: String? = nil) async throws -> TaskObject {
        var headers: [(String, String)] = []
        if let idempotencyKey { headers.append(("Idempotency-Key", idempotencyKey)) }
        if let opaqueID { headers.append(("X-Opaque-Id", opaqueID)) }
        if let traceparent { headers.append(("traceparent", traceparent)) }
        return try await send(.POST, ["api", "v1", "clusters", cluster, "tasks"], body: request, headers: headers)
    }

    public func submitBatch(cluster: String, _ requests: [SubmitTaskRequest]) async throws -> [TaskObject] {
        try await send(.POST, ["api", "v1", "clusters", cluster, "tasks", "batch"], body: SubmitBatchRequest(tasks: requests),
                       as: TaskBatch.self).tasks
    }

    /// One page of tasks. `query` takes the contract's filters: `state`, `type`, `node`, `since`, `until`,
    /// `parent_id`, `opaque_id`, `internal`, `limit`, `after`.
    public func tasks(cluster: String, query: [String: String] = [:]) async throws -> TaskList {
        try await send(.GET, ["api", "v1", "clusters", cluster, "tasks"], query: query)
    }

    public func task(cluster: String, id: Int64) async throws -> TaskDetail {
        try await send(.GET, ["api", "v1", "clusters", cluster, "tasks", String(id)])
    }

    /// Waits up to `timeout` for the task to finish: the task, and whether the wait timed out first.
    public func wait(cluster: String, id: Int64, timeout: Duration) async throws -> (task: TaskObject, timedOut: Bool) {
        let answer = try await raw(.GET, ["api", "v1", "clusters", cluster, "tasks", String(id), "wait"],
                                   query: ["timeout": String(timeout.inSeconds)], extraTimeout: timeout, acceptingErrors: true)
        guard answer.status == 200 || answer.status == 408 else {
            throw Failure(status: answer.status, error: try? APIJSON.decode(ErrorBody.self, from: answer.body),
                          rawBody: String(decoding: answer.body, as: UTF8.self), server: baseURL)
        }
        return (try APIJSON.decode(TaskObject.self, from: answer.body), answer.status == 408)
    }

    /// The task and all its descendants, breadth first (every page).
    public func tree(cluster: String, id: Int64) async throws -> [TaskObject] {
        try await allPages(["api", "v1", "clusters", cluster, "tasks", String(id), "tree"], as: TaskList.self) { ($0.tasks, $0.next) }
    }

    /// The task's whole history (every page).
    public func events(cluster: String, id: Int64) async throws -> [EventObject] {
        try await allPages(["api", "v1", "clusters", cluster, "tasks", String(id), "events"], as: EventList.self) { ($0.events, $0.next) }
    }

    /// Every item of a paged route, following each page's `next` cursor to the last page.
    private func allPages<Page: Decodable, Item>(_ path: [String], as page: Page.Type,
                                                 _ split: (Page) -> (items: [Item], next: String?)) async throws -> [Item] {
        var items: [Item] = []
        var query: [String: String] = [:]
        while true {
            let (pageItems, next) = split(try await send(.GET, path, query: query, as: page))
            items += pageItems
            guard let next else { return items }
            query["after"] = next
        }
    }

    public func cancel(cluster: String, id: Int64, reason: String? = nil) async throws -> TaskObject {
        try await send(.POST, ["api", "v1", "clusters", cluster, "tasks", String(id), "cancel"], body: CancelRequest(reason: reason))
    }

    /// `participants`: `failed` (the server's default: only those without a completed outcome) or `all`.
    public func retry(cluster: String, id: Int64, participants: String? = nil) async throws -> TaskObject {
        guard let participants else { return try await send(.POST, ["api", "v1", "clusters", cluster, "tasks", String(id), "retry"]) }
        return try await send(.POST, ["api", "v1", "clusters", cluster, "tasks", String(id), "retry"],
                              body: RetryRequest(participants: participants))
    }

    public func delete(cluster: String, id: Int64) async throws {
        _ = try await raw(.DELETE, ["api", "v1", "clusters", cluster, "tasks", String(id)])
    }

    // MARK: - The agent's side

    public func poll(cluster: String, node: String, wait: Duration, limit: Int) async throws -> PollResponse {
        try await send(.GET, ["api", "v1", "tasks", cluster, node],
                       query: ["wait": String(wait.inSeconds), "limit": String(limit)], extraTimeout: wait)
    }

    public func heartbeat(cluster: String, node: String, _ heartbeat: HeartbeatRequest) async throws -> HeartbeatResponse {
        try await send(.POST, ["api", "v1", "tasks", cluster, node, "heartbeat"], body: heartbeat)
    }

    public func report(cluster: String, node: String, taskID: Int64, _ report: StateReportRequest) async throws -> TaskObject {
        try await send(.POST, ["api", "v1", "tasks", cluster, node, String(taskID), "state"], body: report)
    }

    /// Whether the token with this SHA-256 may read the node's cluster: 200, 401 or 403 (the node's own
    /// token asks).
    public func scrapeCheck(cluster: String, node: String, tokenSHA256: String) async throws -> Int {
        let response: ScrapeCheckResponse = try await send(.POST, ["api", "v1", "tasks", cluster, node, "scrape-check"],
                                                           body: ScrapeCheckRequest(tokenSHA256: tokenSHA256))
        return response.status
    }

    /// Rollback grants for participants of an attempt the node holds; the attempt can then only be
    /// reported failed or cancelled.
    public func rollbackGrants(cluster: String, node: String, taskID: Int64, _ request: RollbackGrantsRequest) async throws -> [String: String] {
        let response: GrantsResponse = try await send(.POST, ["api", "v1", "tasks", cluster, node, String(taskID), "rollback-grants"], body: request)
        return response.grants
    }

    /// Many reports in one request; each item has its own result.
    public func reportBatch(cluster: String, node: String, _ batch: StateReportBatchRequest) async throws -> StateReportBatchResponse {
        try await send(.POST, ["api", "v1", "tasks", cluster, node, "states"], body: batch)
    }

    // MARK: - Transport

    public func health(_ path: String) async throws -> Int {
        try await raw(.GET, [path], acceptingErrors: true).status
    }

    /// `GET /healthz`'s body.
    public struct Health: Decodable, Sendable {
        public var status: String
        /// Whether this server replica runs the maintenance duties now.
        public var maintenanceLeader: Bool
        enum CodingKeys: String, CodingKey { case status, maintenanceLeader = "maintenance_leader" }
    }

    public func healthBody() async throws -> Health {
        try await send(.GET, ["healthz"])
    }

    /// `GET /metrics`: the Prometheus text the token may see.
    public func metrics() async throws -> String {
        String(decoding: try await raw(.GET, ["metrics"]).body, as: UTF8.self)
    }

    private struct NoBody: Encodable {}

    private func send<Response: Decodable>(
        _ method: HTTPMethod, _ path: [String], query: [String: String] = [:], headers: [(String, String)] = [],
        extraTimeout: Duration = .zero, as type: Response.Type = Response.self
    ) async throws -> Response {
        try await send(method, path, query: query, body: Optional<NoBody>.none, headers: headers, extraTimeout: extraTimeout)
    }

    private func send<Body: Encodable, Response: Decodable>(
        _ method: HTTPMethod, _ path: [String], query: [String: String] = [:], body: Body?,
        headers: [(String, String)] = [], extraTimeout: Duration = .zero, as type: Response.Type = Response.self
    ) async throws -> Response {
        let data = try body.map { try APIJSON.encode($0) }
        let answer = try await raw(method, path, query: query, body: data, headers: headers, extraTimeout: extraTimeout)
        return try APIJSON.decode(Response.self, from: answer.body)
    }

    private func raw(_ method: HTTPMethod, _ path: [String], query: [String: String] = [:], body: Data? = nil,
                     headers: [(String, String)] = [], extraTimeout: Duration = .zero,
                     acceptingErrors: Bool = false) async throws -> (status: Int, body: Data) {
        let server = servers.current
        var request = HTTPClientRequest(url: url(server.url, path, query: query))
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let timeout = requestTimeout + extraTimeout
        let buffer: ByteBuffer
        let response: HTTPClientResponse
        do {
            response = try await transport.client.execute(request, timeout: .milliseconds(timeout.wholeMilliseconds))
            buffer = try await response.body.collect(upTo: 256 << 20)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            servers.moveOn(from: server)
            throw Unreachable(server: server.url, reason: Unreachable.reason(of: error))
        }
        let data = Data(buffer.readableBytesView)
        let status = Int(response.status.code)
        // A replica that cannot reach the database answers 503: the next may.
        if status == 503 { servers.moveOn(from: server) }
        guard (200..<300).contains(status) || acceptingErrors else {
            throw Failure(status: status, error: try? APIJSON.decode(ErrorBody.self, from: data),
                          rawBody: String(decoding: data, as: UTF8.self), server: server.url)
        }
        return (status, data)
    }

    private func url(_ base: String, _ path: [String], query: [String: String]) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove("/")
        var url = base + "/" + path.map { $0.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0 }.joined(separator: "/")
        if !query.isEmpty {
            var components = URLComponents()
            components.queryItems = query.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
            url += "?" + (components.percentEncodedQuery ?? "")
        }
        return url
    }
}

/// The replicas a client may send to, and the one it sends to now. A request that finds the current one
/// unable to answer moves the client on to the next (once, however many requests found it so at once);
/// the next request goes there. Never back by itself: a replica that recovered is used again when the
/// others fail in turn.
final class ServerList: Sendable {
    let urls: [String]
    private let index = Atomic<Int>(0)

    struct Choice {
        let position: Int
        let url: String
    }

    init(_ list: String) {
        let urls = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            .map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.urls = urls.isEmpty ? [list] : urls
    }

    var current: Choice {
        let position = index.load(ordering: .relaxed)
        return Choice(position: position, url: urls[position % urls.count])
    }

    func moveOn(from choice: Choice) {
        guard urls.count > 1 else { return }
        _ = index.compareExchange(expected: choice.position, desired: choice.position + 1, ordering: .relaxed)
    }
}
