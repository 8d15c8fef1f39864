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
                                   metrics: ServerMetrics(store: deployment.store, wakeups: wakeups, maintenance: maintenance), replica: nil)
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
                                               parentID: 1, abortable: true, internal: false, completeWhen: "quorum",
                                               concurrencyKey: "vol1", concurrencyLimit: 2, onLimit: .cancelNewest, onOffline: .fail,
                                               onFinish: .object(["type": "t", "node": "n1"]), idempotencyKey: "i")
            let submissionKeys = try Self.keys(submission)
            let submissionSchema = properties(schemas["TaskSubmission"]!).union(["idempotency_key"])
            #expect(submissionKeys == submissionSchema)
            let participant = ParticipantOutcome(node: "n1", state: .completed, result: [:], error: "e", startedAt: Date(), finishedAt: Date(),
                                                 rollback: ParticipantRollback(state: .completed), decided: true)
            let report = StateReportRequest(TaskReport(attempt: 1, lease: "l", state: .completed, result: [:], error: "e", participants: [participant]),
                                            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            #expect(try Self.keys(report) == properties(schemas["StateReport"]!))
            #expect(try Self.keys(report.participants![0]) == properties(schemas["ParticipantOutcome"]!))
            #expect(try Self.keys(RegisterNodeRequest(endpoint: "http://h:1", labels: [:], capacity: 1)) == properties(bodySchema("NodeRegistration")))
            #expect(try Self.keys(CreateClusterRequest(id: "c", name: "n")) == properties(bodySchema("Cluster")))
            #expect(try Self.keys(WebhookRequest(url: "http://h:1/x", events: ["task.completed"], types: ["t"])) == properties(bodySchema("WebhookCreate")))

            // What the server writes, as it wrote it.
            let node = try await deployment.client.registerNode(cluster: "c1", node: "n1", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            #expect(try Self.keys(node) == properties(schemas["Node"]!))
            let webhook = try await APIContractTests.send(deployment, "POST", "/api/v1/clusters/c1/webhooks",
                                                          body: #"{"url": "http://127.0.0.1:9/x", "events": ["task.failed"]}"#)
            #expect(Set((try JSONSerialization.jsonObject(with: webhook.body) as? [String: Any])?.keys.map { $0 } ?? []) == properties(schemas["Webhook"]!))
            let delivery = DeliveryObject(WebhookDelivery(clusterID: "c1", id: 1, webhookID: 1, eventCursor: ChangeCursor(transaction: 1, event: 1), taskID: 1,
                                                          event: "task.failed", state: .pending, attempts: 0, nextAttemptAt: nil, giveUpAt: Date(),
                                                          lastStatus: nil, lastError: nil, lastAttemptAt: nil, deliveredAt: nil, createdAt: Date()))
            #expect(try Self.keys(delivery) == properties(schemas["Delivery"]!))
            let task = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
            #expect(try Self.keys(task) == properties(schemas["Task"]!).subtracting(["children"]))
            #expect(try Self.keys(task.participants[0]) == properties(schemas["Participant"]!))
            let cluster = try await deployment.client.createCluster(id: "c2")
            #expect(try Self.keys(cluster) == properties(schemas["Cluster"]!))
            let token = try await deployment.client.createToken(TokenRequest(kind: .client, name: "t", scopes: [.read]))
            #expect(try Self.keys(token) == properties(schemas["Token"]!))
        }
    }

    /// The JSON types a schema allows (`$ref`s followed; `{}` allows any: nil), and whether it says `required`.
    static func allowedTypes(_ schema: [String: Any], in schemas: [String: [String: Any]]) -> Set<String>? {
        if let reference = schema["$ref"] as? String, let target = schemas[String(reference.split(separator: "/").last ?? "")] {
            return allowedTypes(target, in: schemas)
        }
        if let type = schema["type"] as? String { return [type] }
        if let types = schema["type"] as? [String] { return Set(types) }
        for key in ["anyOf", "oneOf"] {
            if let options = schema[key] as? [[String: Any]] {
                var union: Set<String> = []
                for option in options {
                    guard let types = allowedTypes(option, in: schemas) else { return nil }
                    union.formUnion(types)
                }
                return union
            }
        }
        if schema["const"] != nil || schema["enum"] != nil { return ["string"] }
        return nil
    }

    /// A JSON value's type as JSON Schema names it.
    static func jsonType(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "boolean"
        case .integer: "integer"
        case .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    @Test("every field the server writes has a type its schema allows: a field written as null is nullable there")
    func schemaTypesMatchWhatIsWritten() async throws {
        try await Deployment.run { deployment in
            let answer = try await APIContractTests.send(deployment, "GET", "/openapi.json")
            let document = try #require(try JSONSerialization.jsonObject(with: answer.body) as? [String: Any])
            let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: [String: Any]])
            func check(_ object: [String: JSONValue], against name: String, _ what: String) {
                let properties = schemas[name]?["properties"] as? [String: [String: Any]] ?? [:]
                let required = Set(schemas[name]?["required"] as? [String] ?? [])
                for (key, value) in object {
                    guard let schema = properties[key] else { continue }  // names are schemasMatchTypes' to check
                    guard let allowed = Self.allowedTypes(schema, in: schemas) else { continue }
                    let type = Self.jsonType(value)
                    #expect(allowed.contains(type) || (type == "integer" && allowed.contains("number")),
                            "\(what): \(name).\(key) is written as \(type), the schema allows \(allowed.sorted())")
                }
                for key in required { #expect(object[key] != nil, "\(what): \(name).\(key) is required but not written") }
            }
            // A queued task (its optional fields null) and a finished one (most of them set).
            let queued = try await APIContractTests.send(deployment, "POST", "/api/v1/clusters/\(Deployment.cluster)/tasks",
                                                         body: #"{"type": "echo", "participating_nodes": ["n1", "n2"], "payload": {"a": 1}, "run_after": "2030-01-01T00:00:00Z"}"#)
            let done = try await deployment.client.submit(cluster: Deployment.cluster, SubmitTaskRequest(
                type: "echo", participatingNodes: ["n1", "n2"], payload: ["a": 1], timeoutSeconds: 60, orderingKey: "k"))
            _ = try await deployment.finished(done.id)
            let finished = try await APIContractTests.send(deployment, "GET", "/api/v1/clusters/\(Deployment.cluster)/tasks/\(done.id)")
            for (what, body) in [("a queued task", queued.body), ("a finished task", finished.body)] {
                guard case .object(let task)? = body.withUnsafeBytes({ JSONParser.parse($0.bindMemory(to: UInt8.self)) }) else {
                    Issue.record("\(what) is not an object")
                    continue
                }
                check(task, against: "Task", what)
                guard case .array(let participants)? = task["participants"] else { continue }
                for case .object(let participant) in participants { check(participant, against: "Participant", what) }
            }
        }
    }
}
