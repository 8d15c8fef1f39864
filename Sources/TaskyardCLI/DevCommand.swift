import ArgumentParser
import Dispatch
import EmbeddedPostgres
import Foundation
import Postgres
import TaskyardStore

struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run Taskyard on a private PostgreSQL in ./.taskyard (the embedded default).",
        discussion: """
            Starts a PostgreSQL server of its own in the data folder (initdb on first use, from the PostgreSQL binaries installed on this machine; as root it runs them as the postgres user), applies the migrations, prints how to reach the database, and stops it all on Ctrl-C. A second run reuses the data; --reset starts from scratch.

            The HTTP server and the node agents join this command with the next milestone; today it gives you the schema to explore with psql.

            Example:
              swift run taskyard dev
              swift run taskyard dev --reset --port 5544
            """
    )

    @Option(help: ArgumentHelp("Folder for the database and its log.", valueName: "path"))
    var dataDir = ".taskyard"

    @Option(help: "TCP port for PostgreSQL on 127.0.0.1 (its socket lives in the data folder too).")
    var port = 5433

    @Flag(help: "Delete the data folder first and start from an empty database.")
    var reset = false

    func run() async throws {
        let folder = URL(fileURLWithPath: dataDir, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
            .standardizedFileURL
        if reset, FileManager.default.fileExists(atPath: folder.path) {
            say("removing \(folder.path)")
            try FileManager.default.removeItem(at: folder)
        }
        let server = try EmbeddedPostgres(dataDirectory: folder.appending(path: "postgres"),
                                          socketDirectory: folder.appending(path: "run"), port: port, listenOnTCP: true)
        if !server.isInitialized { say("initialising a new PostgreSQL cluster in \(server.dataDirectory.path) …") }
        try server.initializeIfNeeded()
        if server.isRunning {
            throw ValidationError("PostgreSQL already runs on \(server.dataDirectory.path): is another `taskyard dev` running here?")
        }
        try server.start()
        do {
            try await prepare(server)
        } catch {
            try? server.stop(mode: .fast)
            throw error
        }
        say("""

            Taskyard dev is up.
              database   postgres://postgres@127.0.0.1:\(port)/taskyard
              psql       psql -h 127.0.0.1 -p \(port) -U postgres taskyard
              log        \(server.logFile.path)
            Try:  SELECT id, type, state, assigned_node FROM tasks ORDER BY id DESC LIMIT 20;
            Ctrl-C stops everything.
            """)
        await waitForInterrupt()
        say("\nstopping PostgreSQL …")
        try server.stop(mode: .fast)
        say("stopped; the data stays in \(folder.path) (use --reset to start over)")
    }

    private func prepare(_ server: EmbeddedPostgres) async throws {
        let admin = try await PostgresConnection.connect(server.configuration())
        let exists: Bool = try await admin.perform { connection in
            try connection.query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS found", ["taskyard"])
                .single().decode("found")
        }
        if !exists { try await admin.perform { connection in try connection.execute("CREATE DATABASE taskyard") } }
        await admin.close()
        let pool = PostgresPool(configuration: server.configuration(database: "taskyard"), options: .init(maximumConnections: 1))
        let outcome = try await Migrator.bundled().migrate(pool) { migration in say("applied \(migration.name)") }
        await pool.close()
        say("schema up to date (\(outcome.applied.count + outcome.alreadyApplied.count) migrations)")
    }

    /// Returns on SIGINT or SIGTERM.
    private func waitForInterrupt() async {
        let (signals, continuation) = AsyncStream<Int32>.makeStream()
        var sources: [any DispatchSourceSignal] = []
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { continuation.yield(signalNumber) }
            source.resume()
            sources.append(source)
        }
        for await _ in signals { break }
        sources.forEach { $0.cancel() }
    }
}
