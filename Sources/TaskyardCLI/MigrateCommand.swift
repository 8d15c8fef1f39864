import TaskyardCommandLine
import ArgumentParser
import Foundation
import Postgres
import TaskyardStore

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply the pending schema migrations to a database.",
        discussion: """
            Applies the migrations built into this binary, in order, each in its own transaction, under a PostgreSQL advisory lock, so that several replicas starting at once apply each file once. Refuses to run when a migration already applied has changed since.

            Example:
              taskyard migrate --database-url postgres://taskyard:secret@127.0.0.1:5432/taskyard
            """
    )

    @Option(name: .customLong("database-url"),
            help: ArgumentHelp("PostgreSQL URL or libpq keywords. Default: $TASKYARD_DATABASE_URL.",
                               valueName: "url"))
    var databaseURL: String?

    func run() async throws {
        let configuration = try PostgresConfiguration(try DatabaseURL.resolve(databaseURL))
        let (store, migrated) = try await TaskStore.open(database: configuration, poolSize: 1, migrate: true) { migration in
            say("applied \(migration.name)")
        }
        await store.close()
        guard let outcome = migrated else { return }
        if !outcome.unknownVersions.isEmpty {
            let versions = outcome.unknownVersions.map(String.init).joined(separator: ", ")
            say("note: the database also has migrations this binary does not know (\(versions)); a newer taskyard ran here")
        }
        say("database is up to date: \(outcome.applied.count) applied now, \(outcome.alreadyApplied.count) already applied")
    }
}

/// The database URL from a flag, else from `TASKYARD_DATABASE_URL`.
enum DatabaseURL {
    static func resolve(_ flag: String?) throws -> String {
        if let url = setting(flag, "TASKYARD_DATABASE_URL") { return url }
        throw ValidationError("no database given: pass --database-url or set TASKYARD_DATABASE_URL")
    }
}
