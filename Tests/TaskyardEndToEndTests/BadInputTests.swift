import AsyncHTTPClient
import Foundation
import NIOCore
import Postgres
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardTestSupport

@Suite("Bad input gets a clear error and changes nothing")
struct BadInputTests {
    struct Case: Sendable, CustomStringConvertible {
        let name: String
        var method: HTTPMethodName = .POST
        var path = "/api/v1/clusters/c1/tasks"
        var contentType: String? = "application/json"
        let body: String?
        let status: Int
        var code: String? = nil
        var field: String? = nil
        var description: String { name }
    }

    enum HTTPMethodName: String, Sendable { case GET, POST, PUT, DELETE }

    static let cases: [Case] = [
        Case(name: "malformed JSON", body: #"{"type": "noop", "participating_nodes": ["n1""#, status: 400, code: "malformed_json"),
        Case(name: "missing type", body: #"{"participating_nodes": ["n1"]}"#, status: 422, code: "missing_field", field: "type"),
        Case(name: "empty participants", body: #"{"type": "noop", "participating_nodes": []}"#, status: 422,
             field: "participating_nodes"),
        Case(name: "unknown participant", body: #"{"type": "noop", "participating_nodes": ["n1", "n7"]}"#, status: 422,
             code: "unknown_node", field: "participating_nodes[1]"),
        Case(name: "unknown cluster", path: "/api/v1/clusters/nope/tasks", body: #"{"type": "noop", "participating_nodes": ["n1"]}"#,
             status: 404, code: "cluster_not_found"),
        Case(name: "participants not an array", body: #"{"type": "noop", "participating_nodes": "n1"}"#, status: 422,
             code: "invalid_type", field: "participating_nodes"),
        Case(name: "priority not a number", body: #"{"type": "noop", "participating_nodes": ["n1"], "priority": "high"}"#,
             status: 422, code: "invalid_type", field: "priority"),
        Case(name: "payload not an object", body: #"{"type": "noop", "participating_nodes": ["n1"], "payload": [1, 2]}"#,
             status: 422, field: "payload"),
        Case(name: "assign not a policy", body: #"{"type": "noop", "participating_nodes": ["n1"], "assign": "random"}"#,
             status: 422, field: "assign"),
        Case(name: "run_after not a time", body: #"{"type": "noop", "participating_nodes": ["n1"], "run_after": "tomorrow"}"#,
             status: 422, field: "run_after"),
        Case(name: "2 MiB body", body: #"{"type": "noop", "participating_nodes": ["n1"], "payload": {"blob": ""#
             + String(repeating: "x", count: 2 << 20) + #""}}"#, status: 413, code: "body_too_large"),
        Case(name: "not JSON content type", contentType: "text/plain", body: #"{"type": "noop", "participating_nodes": ["n1"]}"#,
             status: 415, code: "unsupported_media_type"),
        Case(name: "no content type", contentType: nil, body: #"{"type": "noop", "participating_nodes": ["n1"]}"#,
             status: 415, code: "unsupported_media_type"),
        Case(name: "node id with quote and comment", body: #"{"type": "noop", "participating_nodes": ["n1'; --"]}"#,
             status: 422, field: "participating_nodes[0]"),
        Case(name: "type with spaces", body: #"{"type": "volume create", "participating_nodes": ["n1"]}"#,
             status: 422, field: "type"),
        Case(name: "cluster id with SQL in the path", path: "/api/v1/clusters/c1'%3B%20DROP%20TABLE%20tasks%3B%20--/tasks",
             body: #"{"type": "noop", "participating_nodes": ["n1"]}"#, status: 404, code: "cluster_not_found"),
        Case(name: "cluster id with a quote", path: "/api/v1/clusters", body: #"{"id": "c2' OR '1'='1"}"#, status: 422, field: "id"),
        Case(name: "batch item at fault is named", path: "/api/v1/clusters/c1/tasks/batch",
             body: #"{"tasks": [{"type": "noop", "participating_nodes": ["n1"]}, {"type": "noop", "participating_nodes": [5]}]}"#,
             status: 422, code: "invalid_type", field: "tasks[1].participating_nodes[0]"),
        Case(name: "wrong method", method: .DELETE, path: "/api/v1/clusters", contentType: nil, body: nil, status: 405,
             code: "method_not_allowed"),
        Case(name: "unknown route", method: .GET, path: "/api/v1/nothing", contentType: nil, body: nil, status: 404),
        Case(name: "task id not a number", method: .GET, path: "/api/v1/clusters/c1/tasks/abc", contentType: nil, body: nil,
             status: 404, code: "task_not_found"),
        Case(name: "list limit out of range", method: .GET, path: "/api/v1/clusters/c1/tasks?limit=5000", contentType: nil,
             body: nil, status: 400, field: "limit"),
        Case(name: "stale report", path: "/api/v1/tasks/c1/n1/1/state", body: #"{"attempt": 7, "lease": "x", "state": "completed"}"#,
             status: 409),
        Case(name: "report without its lease", path: "/api/v1/tasks/c1/n1/1/state", body: #"{"attempt": 1, "state": "completed"}"#,
             status: 422, field: "lease"),
        Case(name: "report with another lease", path: "/api/v1/tasks/c1/n1/1/state",
             body: #"{"attempt": 1, "lease": "not-the-claim's", "state": "completed"}"#, status: 409, code: "stale_lease"),
        // A report under a stale lease is stale whatever else it says (HostileInputTests has the same report
        // under the real lease: 422 naming the participant).
        Case(name: "report for a participant outside the task under another lease", path: "/api/v1/tasks/c1/n1/1/state",
             body: #"{"attempt": 1, "lease": "x", "state": "failed", "participants": [{"node": "n3", "state": "failed"}]}"#, status: 409,
             code: "stale_lease", field: "lease"),
    ]

    @Test("every bad request, one after another on one deployment: a clear error, and no row changed")
    func badRequests() async throws {
        // Agents would claim the task below; none run here, so the rows stay put.
        try await Deployment.run(nodes: []) { deployment in
            for node in ["n1", "n2"] {
                _ = try await deployment.client.registerNode(cluster: Deployment.cluster, node: node,
                                                            RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            }
            // Task 1, received by n1 at attempt 1, for the report cases.
            _ = try await deployment.client.submit(cluster: Deployment.cluster,
                                                   SubmitTaskRequest(type: "noop", participatingNodes: ["n1", "n2"]))
            _ = try await deployment.client.poll(cluster: Deployment.cluster, node: "n1", wait: .seconds(0), limit: 1)
            for badCase in Self.cases {
                let before = try await Self.tables(deployment)
                var request = HTTPClientRequest(url: deployment.serverURL + badCase.path)
                request.method = .init(rawValue: badCase.method.rawValue)
                request.headers.add(name: "Authorization", value: "Bearer \(deployment.adminToken)")
                if let contentType = badCase.contentType { request.headers.add(name: "Content-Type", value: contentType) }
                if let body = badCase.body { request.body = .bytes(ByteBuffer(string: body)) }
                let response = try await HTTPTransport.shared.client.execute(request, timeout: .seconds(30))
                let data = Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)

                #expect(Int(response.status.code) == badCase.status, "\(badCase): \(String(decoding: data, as: UTF8.self))")
                #expect(response.headers.first(name: "Content-Type") == "application/json", "\(badCase)")
                let error = try APIJSON.decode(ErrorBody.self, from: data)
                #expect(!error.error.message.isEmpty, "\(badCase)")
                if let code = badCase.code { #expect(error.error.code.rawValue == code, "\(badCase)") }
                if let field = badCase.field { #expect(error.error.field == field, "\(badCase): \(error.error.message)") }
                #expect(try await Self.tables(deployment) == before, "\(badCase): a refused request must change nothing")
            }
        }
    }

    /// Every row of tasks and their events as text, and how many clusters and nodes there are.
    static func tables(_ deployment: Deployment) async throws -> [String] {
        try await deployment.store.snapshot() + rowCounts(deployment).map(String.init)
    }

    static func rowCounts(_ deployment: Deployment) async throws -> [Int] {
        try await deployment.store.pool.withConnection { connection in
            try ["clusters", "nodes"].map { table in
                try connection.query("SELECT count(*) AS n FROM \(table)").single().decode("n", as: Int.self)
            }
        }
    }
}
