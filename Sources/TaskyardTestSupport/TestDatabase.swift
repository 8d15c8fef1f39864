import EmbeddedPostgres
import Foundation
import Postgres
import TaskyardStore

/// Databases for tests on a real PostgreSQL server.
///
/// With `TASKYARD_TEST_DATABASE_URL` set, tests use that server (the URL's user needs CREATEDB). Without
/// it, the first test that asks starts a private server in a throw-away folder, initialised once per
/// test run and stopped when the test process exits (even if it crashes). Each test gets a database of
/// its own, cloned from a migrated template, so tests can run in parallel and see only their own rows.
public enum TestDatabase {
    /// A fresh, migrated database; dropped when `body` returns.
    public static func withDatabase<T: Sendable>(
        _ body: (PostgresConfiguration) async throws -> T
    ) async throws -> T {
        try await withNewDatabase(template: nil, body)
    }

    /// A pool on a fresh, migrated database; closed and dropped when `body` returns.
    public static func withPool<T: Sendable>(
        maximumConnections: Int = 4, checkoutTimeout: Duration = .seconds(10),
        _ body: (PostgresPool) async throws -> T
    ) async throws -> T {
        try await withDatabase { configuration in
            let pool = PostgresPool(configuration: configuration,
                                    options: .init(maximumConnections: maximumConnections, checkoutTimeout: checkoutTimeout))
            let result: Result<T, any Error>
            do { result = .success(try await body(pool)) } catch { result = .failure(error) }
            await pool.close()
            return try result.get()
        }
    }

    /// A store on a fresh, migrated database.
    public static func withStore<T: Sendable>(_ body: (TaskStore) async throws -> T) async throws -> T {
        try await withPool { pool in try await body(TaskStore(pool: pool)) }
    }

    /// An empty database with no schema; dropped when `body` returns.
    public static func withEmptyDatabase<T: Sendable>(
        _ body: (PostgresConfiguration) async throws -> T
    ) async throws -> T {
        try await withNewDatabase(template: "template0", body)
    }

    /// A database cloned from `template` (nil: the migrated one), dropped when `body` returns.
    private static func withNewDatabase<T: Sendable>(
        template: String?, _ body: (PostgresConfiguration) async throws -> T
    ) async throws -> T {
        let server = try await TestServer.shared.start()
        let name = try await TestServer.shared.createDatabase(template: template)
        let result: Result<T, any Error>
        do { result = .success(try await body(server.admin.withDatabase(name))) } catch { result = .failure(error) }
        try? await TestServer.shared.dropDatabase(name)
        return try result.get()
    }

    /// Settings that make a throw-away server fast (durability is not needed for test data).
    public static var throwAwaySettings: [String: String] { TestServer.fastSettings }

    /// A private PostgreSQL server of its own, for a test that restarts or stops it; `settings` over the
    /// throw-away ones.
    public static func withPrivateServer<T: Sendable>(
        settings: [String: String] = [:], _ body: (EmbeddedPostgres) async throws -> T
    ) async throws -> T {
        let folder = try TestServer.makeRunFolder()
        let server = try EmbeddedPostgres(dataDirectory: folder.appending(path: "data"), socketDirectory: folder,
                                          settings: TestServer.fastSettings.merging(settings) { $1 })
        try server.initializeIfNeeded()
        try server.start()
        try server.stopWhenProcessExits(getpid(), thenRemove: folder)
        let result: Result<T, any Error>
        do { result = .success(try await body(server)) } catch { result = .failure(error) }
        try? server.stop(mode: .immediate)
        try? FileManager.default.removeItem(at: folder)
        return try result.get()
    }
}

/// The one server of this test process, and its migrated template database.
actor TestServer {
    static let shared = TestServer()

    struct Started: Sendable {
        let admin: PostgresConfiguration
        let template: String
    }

    /// Settings that make a throw-away server fast: durability is not needed for test data.
    static let fastSettings = [
        "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "600",
        "shared_buffers": "128MB",
    ]

    private var started: Task<Started, any Error>?
    private var admin: PostgresConnection?
    private var counter = 0
    private let runID = String(UUID().uuidString.prefix(8)).lowercased()

    func start() async throws -> Started {
        if let started { return try await started.value }
        let task = Task { try await Self.launch(runID: runID) }
        started = task
        return try await task.value
    }

    private static func launch(runID: String) async throws -> Started {
        let admin: PostgresConfiguration
        if let url = ProcessInfo.processInfo.environment["TASKYARD_TEST_DATABASE_URL"], !url.isEmpty {
            admin = try PostgresConfiguration(url)
        } else {
            let folder = try makeRunFolder()
            let server = try EmbeddedPostgres(dataDirectory: folder.appending(path: "data"), socketDirectory: folder,
                                              settings: fastSettings)
            try server.initializeIfNeeded()
            try server.start()
            try server.stopWhenProcessExits(getpid(), thenRemove: folder)
            admin = server.configuration()
        }
        let template = "taskyard_template_\(runID)"
        let connection = try await PostgresConnection.connect(admin)
        try await connection.perform { connection in
            try connection.execute("CREATE DATABASE \(try connection.quoteIdentifier(template))")
        }
        await connection.close()
        let pool = PostgresPool(configuration: admin.withDatabase(template), options: .init(maximumConnections: 1))
        try await Migrator.bundled().migrate(pool)
        await pool.close()
        return Started(admin: admin, template: template)
    }

    static func makeRunFolder() throws -> URL {
        // Short: the server's socket path must fit in 107 bytes.
        let folder = URL(fileURLWithPath: "/tmp/taskyard-test-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    private func adminConnection() async throws -> PostgresConnection {
        if let admin, !admin.isBroken { return admin }
        let connection = try await PostgresConnection.connect(try await start().admin)
        admin = connection
        return connection
    }

    func createDatabase(template: String? = nil) async throws -> String {
        let started = try await start()
        counter += 1
        let name = "taskyard_test_\(runID)_\(counter)"
        let source = template ?? started.template
        try await adminConnection().perform { connection in
            try connection.execute("CREATE DATABASE \(try connection.quoteIdentifier(name)) TEMPLATE \(try connection.quoteIdentifier(source))")
        }
        return name
    }

    func dropDatabase(_ name: String) async throws {
        try await adminConnection().perform { connection in
            try connection.execute("DROP DATABASE IF EXISTS \(try connection.quoteIdentifier(name)) WITH (FORCE)")
        }
    }
}

extension EmbeddedPostgres {
    /// A store on this server's database, the schema migrated, over a pool of `connections`.
    public func migratedStore(connections: Int) async throws -> TaskStore {
        let pool = PostgresPool(configuration: configuration(), options: .init(maximumConnections: connections))
        try await Migrator.bundled().migrate(pool)
        return TaskStore(pool: pool)
    }
}
