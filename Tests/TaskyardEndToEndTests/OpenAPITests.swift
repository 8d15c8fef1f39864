import Foundation
import Testing
import TaskyardTestSupport
@testable import TaskyardServer
import TaskyardStore
import TaskyardAPI
import TaskyardDomain

@Suite("OpenAPI document")
struct OpenAPITests {
    @Test("GET /openapi.json is OpenAPI 3.1 and lists exactly the routes the server registers, with their methods")
    func documentMatchesRoutes() async throws {
        try await Deployment.run(nodes: []) { deployment in
            let answer = try await APIContractTests.send(deployment, "GET", "/openapi.json")
            #expect(answer.status == 200)
            #expect(answer.headers["content-type"] == "application/json")
            let document = try #require(try JSONSerialization.jsonObject(with: answer.body) as? [String: Any])
            #expect(document["openapi"] as? String == "3.1.0")
            let paths = try #require(document["paths"] as? [String: [String: Any]])
            let documented = Set(paths.flatMap { path, operations in operations.keys.map { "\($0.uppercased()) \(path)" } })

            let credentials = CredentialStore(pool: deployment.store.pool)
            let maintenance = MaintenanceLeader(store: deployment.store, duties: [], logger: Deployment.quietLogger)
            let wakeups = Wakeups(signals: TaskSignals(), database: deployment.store.pool.configuration, logger: Deployment.quietLogger)
            let routes = APIRoutes(store: deployment.store, credentials: credentials,
                                   authenticator: Authenticator(credentials: credentials, configuration: .init(), logger: Deployment.quietLogger),
                                   grants: GrantIssuer(credentials: credentials, keyFile: TestEnvironment.keyFile),
                                   configuration: ServerConfiguration(keyFile: TestEnvironment.keyFile), maintenance: maintenance, wakeups: wakeups,
                                   metrics: ServerMetrics(store: deployment.store, wakeups: wakeups, maintenance: maintenance))
                .routes()
            // `:name` in the router is `{name}` in OpenAPI.
            let registered = Set(routes.map { route in
                let path = route.path.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
                return "\(route.method.rawValue) /" + path.joined(separator: "/")
            })
            #expect(registered.subtracting(documented).isEmpty, "routes missing from the document: \(registered.subtracting(documented).sorted())")
            #expect(documented.subtracting(registered).isEmpty, "documented routes the server lacks: \(documented.subtracting(registered).sorted())")
            #expect(registered.contains("POST /api/v1/tasks/{cluster_id}/{node_id}/states"))
        }
    }
}

extension OpenAPITests {
    /// The fields of an encoded value, nulls included.
    static func keys(_ value: some Encodable) throws -> Set<String> {
        Set(try #require(try JSONSerialization.jsonObject(with: APIJSON.encode(value)) as? [String: Any]).keys)
    }

    @Test("the document's schemas name exactly the fields the server's own types read and write")
    func schemasMatchTypes() async throws {
        try await Deployment.run(nodes: []) { deployment in
            let answer = try await APIContractTests.send(deployment, "GET", "/openapi.json")
            let document = try #require(try JSONSerialization.jsonObject(with: answer.body) as? [String: Any])
            let components = try #require(document["components"] as? [String: Any])
            let schemas = try #require(components["schemas"] as? [String: [String: Any]])
            let bodies = try #require(components["requestBodies"] as? [String: [String: Any]])
            func properties(_ schema: [String: Any]) -> Set<String> {
                var names = Set((schema["properties"] as? [String: Any])?.keys.map { $0 } ?? [])
                for key in ["anyOf", "oneOf", "allOf"] {
                    for inner in schema[key] as? [[String: Any]] ?? [] { names.formUnion(properties(inner)) }
                }
                return names
            }
            func bodySchema(_ name: String) -> [String: Any] {
                ((bodies[name]?["content"] as? [String: Any])?["application/json"] as? [String: Any])?["schema"] as? [String: Any] ?? [:]
            }

            // What the server reads: every field of each request type, set.
            let submission = SubmitTaskRequest(type: "t", participatingNodes: ["n1"], payload: [:], priority: 1, runAfter: Date(),
                                               maxAttempts: 1, timeoutSeconds: 1, orderingKey: "k", assign: .first, affinity: .any,
                                               parentID: 1, abortable: true, internal: false, idempotencyKey: "i")
            #expect(try Self.keys(submission) == properties(schemas["TaskSubmission"]!).union(["idempotency_key"]))
            let participant = ParticipantOutcome(node: "n1", state: .completed, result: [:], error: "e", startedAt: Date(), finishedAt: Date(),
                                                 rollback: ParticipantRollback(state: .completed), decided: true)
            let report = StateReportRequest(TaskReport(attempt: 1, lease: "l", state: .completed, result: [:], error: "e", participants: [participant]))
            #expect(try Self.keys(report) == properties(schemas["StateReport"]!))
            #expect(try Self.keys(report.participants![0]) == properties(schemas["ParticipantOutcome"]!))
            #expect(try Self.keys(RegisterNodeRequest(endpoint: "http://h:1", labels: [:], capacity: 1)) == properties(bodySchema("NodeRegistration")))
            #expect(try Self.keys(CreateClusterRequest(id: "c", name: "n")) == properties(bodySchema("Cluster")))

            // What the server writes, as it wrote it.
            let node = try await deployment.client.registerNode(cluster: "c1", node: "n1", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            #expect(try Self.keys(node) == properties(schemas["Node"]!))
            let task = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
            #expect(try Self.keys(task) == properties(schemas["Task"]!).subtracting(["children"]))
            #expect(try Self.keys(task.participants[0]) == properties(schemas["Participant"]!))
            let cluster = try await deployment.client.createCluster(id: "c2")
            #expect(try Self.keys(cluster) == properties(schemas["Cluster"]!))
            let token = try await deployment.client.createToken(TokenRequest(kind: .client, name: "t", scopes: [.read]))
            #expect(try Self.keys(token) == properties(schemas["Token"]!))
        }
    }
}
