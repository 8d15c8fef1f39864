import Foundation
import Postgres
import Testing
import TaskyardAPI
import TaskyardServer
import TaskyardStore
import TaskyardTestSupport

@Suite("Bounded waits on the database")
struct DatabaseBoundsTests {
    @Test("LOCK TABLE tasks held by someone else: requests answer 503 within the lock timeout, /readyz says not ready, then both recover")
    func lockedTable() async throws {
        try await TestDatabase.withPool { testPool in
            var server = ServerConfiguration(keyFile: TestEnvironment.keyFile)
            server.lockTimeout = .seconds(1)
            var configuration = testPool.configuration
            configuration.sessionSettings = server.databaseSessionSettings
            let pool = PostgresPool(configuration: configuration, options: .init(maximumConnections: 6))
            let store = TaskStore(pool: pool)
            try await Deployment.run(on: store, nodes: [], serverSettings: { $0.lockTimeout = .seconds(1) }) { deployment in
                _ = try await deployment.client.registerNode(cluster: "c1", node: "n1", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
                #expect(try await APIContractTests.send(deployment, "GET", "/readyz").status == 200)
                // Someone else (a migration, an operator) holds the table for 4 s.
                let locker = try await PostgresConnection.connect(testPool.configuration)
                try await locker.perform { connection in try connection.execute("BEGIN; LOCK TABLE tasks") }
                let clock = ContinuousClock()
                let started = clock.now
                let submit = try await APIContractTests.send(deployment, "POST", "/api/v1/clusters/c1/tasks",
                                                             body: #"{"type": "noop", "participating_nodes": ["n1"]}"#)
                let waited = clock.now - started
                #expect(submit.status == 503, "\(String(decoding: submit.body, as: UTF8.self))")
                #expect(submit.headers["retry-after"] == "1")
                #expect(waited < .seconds(3), "refused within the lock timeout, not after the lock: \(waited)")
                let readyStart = clock.now
                let ready = try await APIContractTests.send(deployment, "GET", "/readyz")
                #expect(ready.status == 503)
                #expect(clock.now - readyStart < .seconds(2), "/readyz answers within a second or so")
                try await locker.perform { connection in try connection.execute("COMMIT") }
                await locker.close()
                // Recovered: the same requests succeed.
                let again = try await APIContractTests.send(deployment, "POST", "/api/v1/clusters/c1/tasks",
                                                            body: #"{"type": "noop", "participating_nodes": ["n1"]}"#)
                #expect(again.status == 201)
                #expect(try await APIContractTests.send(deployment, "GET", "/readyz").status == 200)
            }
            await pool.close()
        }
    }
}
