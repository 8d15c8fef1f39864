import Postgres
import Testing
import TaskyardStore
import TaskyardTestSupport

@Suite("SQL statements")
struct StatementTests {
    @Test("every named statement prepares against the migrated schema")
    func everyStatementPrepares() async throws {
        try await TestDatabase.withPool(maximumConnections: 1) { pool in
            for statement in StoreStatements.all {
                do {
                    try await pool.withConnection { connection in try connection.prepare(statement) }
                } catch {
                    Issue.record("\(statement.name) does not prepare: \(error)")
                }
            }
        }
    }

    @Test("statement names are unique")
    func namesAreUnique() {
        let names = StoreStatements.all.map(\.name)
        #expect(Set(names).count == names.count)
    }
}
