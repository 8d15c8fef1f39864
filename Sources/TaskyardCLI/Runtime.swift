import Foundation
import Logging
import Postgres
import ServiceLifecycle
import TaskyardAgent
import TaskyardServer
import TaskyardStore
import TaskyardCommandLine

/// Wiring shared by `serve`, `agent` and `dev`: the same parts, assembled once.
enum Runtime {
    /// A pool on the database, migrated unless told not to.
    static func openStore(database: PostgresConfiguration, poolSize: Int, migrate: Bool,
                          configuration: TaskStore.Configuration = TaskStore.Configuration(),
                          logger: Logger) async throws -> TaskStore {
        let (store, migrated) = try await TaskStore.open(database: database, poolSize: poolSize, migrate: migrate,
                                                         configuration: configuration) { migration in
            logger.info("applied migration", metadata: ["file": "\(migration.name)"])
        }
        if let migrated {
            logger.info("schema up to date", metadata: ["migrations": "\(migrated.applied.count + migrated.alreadyApplied.count)"])
        }
        return store
    }

    /// Runs services until SIGINT or SIGTERM, then shuts them down gracefully, in reverse order.
    static func run(_ services: [any Service], logger: Logger) async throws {
        try await runUntilSignalled(services, logger: logger)
    }
}

extension TaskStore {
    /// `body`'s answer, the store's connections closed after it, whether it returned or threw: for the
    /// commands that open a store for one piece of work.
    func closing<T: Sendable>(_ body: (TaskStore) async throws -> T) async throws -> T {
        do {
            let answer = try await body(self)
            await close()
            return answer
        } catch {
            await close()
            throw error
        }
    }
}
