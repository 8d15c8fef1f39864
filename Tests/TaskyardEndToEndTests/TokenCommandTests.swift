import Foundation
import Postgres
import Testing
import TaskyardClient
import TaskyardServer
import TaskyardStore
import TaskyardTestSupport

@Suite("taskyard token")
struct TokenCommandTests {
    @Test("the first admin token straight into a new database: only the secret on stdout, and the server honours it; list and revoke")
    func bootstrapByDatabase() async throws {
        try await TestDatabase.withEmptyDatabase { configuration in
            let url = configuration.connectionString
            let created = try await TestEnvironment.runTaskyardAsync([
                "token", "create", "--database-url", url, "--kind", "client", "--scope", "admin", "--name", "ops", "--log-level", "warning",
            ])
            #expect(created.status == 0, "\(created.output)")
            let secret = created.output.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(secret.hasPrefix("tyd_") && !secret.contains("\n"), "only the secret: \(created.output)")

            let pool = PostgresPool(configuration: configuration, options: .init(maximumConnections: 4))
            let store = TaskStore(pool: pool)
            try await Deployment.run(on: store, nodes: []) { deployment in
                let ops = deployment.client(token: secret)
                #expect(try await ops.clusters().map(\.id) == ["c1"])
                let listed = try await TestEnvironment.runTaskyardAsync(["token", "list", "--database-url", url, "--log-level", "warning"])
                #expect(listed.status == 0 && listed.output.contains("ops") && !listed.output.contains(secret), "\(listed.output)")
                let id = try #require(try await ops.tokens().first { $0.name == "ops" }?.id)
                let revoked = try await TestEnvironment.runTaskyardAsync(["token", "revoke", String(id), "--server", deployment.serverURL],
                                                                         environment: deployment.cliEnvironment)
                #expect(revoked.status == 0, "\(revoked.output)")
                try await eventually("the revoked token is refused", within: .seconds(10)) { (try? await ops.clusters()) == nil }
            }
            await pool.close()
        }
    }
}
