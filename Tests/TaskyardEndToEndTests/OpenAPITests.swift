import Foundation
import Testing
@testable import TaskyardServer
import TaskyardStore

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
            let routes = APIRoutes(store: deployment.store, credentials: credentials, grants: GrantIssuer(credentials: credentials),
                                   configuration: ServerConfiguration(),
                                   maintenance: MaintenanceLeader(store: deployment.store, duties: [],
                                                                  logger: Deployment.quietLogger),
                                   wakeups: Wakeups(database: deployment.store.pool.configuration, logger: Deployment.quietLogger))
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
