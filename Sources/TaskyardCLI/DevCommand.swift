import ArgumentParser
import TaskyardCommandLine
import Dispatch
import EmbeddedPostgres
import Foundation
import Postgres
import ServiceLifecycle
import TaskyardAgent
import TaskyardDomain
import TaskyardSecurity
import TaskyardServer
import TaskyardStore

struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run all of Taskyard on this machine: PostgreSQL, the server and three agents.",
        discussion: """
            Starts a PostgreSQL server of its own in the data folder (initdb on first use, from the PostgreSQL binaries installed here; as root it runs them as the postgres user), applies the migrations, creates the cluster dev, and runs the HTTP server and the agents of nodes n1, n2 and n3 (participant endpoints on ports 7001–7003). Prints where everything is. Ctrl-C stops it all; the data stays for the next run, and --reset starts from scratch.

            Example:
              swift run taskyard dev
              swift run taskyard dev --reset --listen 127.0.0.1:9090 --handlers ./handlers
            """
    )

    @Option(help: ArgumentHelp("Folder for the database and its log.", valueName: "path"))
    var dataDir = ".taskyard"

    @Option(help: "TCP port for PostgreSQL on 127.0.0.1 (its socket is in the data folder too).")
    var port = 5433

    @Option(help: ArgumentHelp("Address of the HTTP server.", valueName: "host:port"))
    var listen = "127.0.0.1:8080"

    @Option(help: "Port of n1's participant endpoint; n2 and n3 take the next two.")
    var agentPort = 7001

    @Option(help: ArgumentHelp("Folder of executable handlers, one per task type. Default: ./examples/handlers when it exists (the README's volume_create).", valueName: "dir"))
    var handlers: String?

    /// The handlers folder: the flag, else the repository's examples when run from its root.
    var handlersFolder: URL? {
        if let handlers { return URL(fileURLWithPath: handlers) }
        let examples = URL(fileURLWithPath: "examples/handlers")
        var isFolder: ObjCBool = false
        return FileManager.default.fileExists(atPath: examples.path, isDirectory: &isFolder) && isFolder.boolValue
            ? examples.standardizedFileURL : nil
    }

    @Flag(help: "Delete the data folder first and start from an empty database.")
    var reset = false

    @Flag(name: .customLong("allow-plain-http"),
          help: "Let --listen name an address other than loopback: the dev server speaks plain HTTP, so tokens cross the network readable.")
    var allowPlainHTTP = false

    @OptionGroup var logging: LoggingOptions
    @OptionGroup var tracing: TracingOptions

    static let cluster = "dev"
    static let nodes = ["n1", "n2", "n3"]

    func run() async throws {
        let logger = try logging.makeLogger("taskyard.dev")
        let address = try ListenAddress(listen, option: "--listen")
        if !address.isLoopback {
            guard allowPlainHTTP else {
                throw ValidationError("refusing to serve plain HTTP on \(listen), an address other than loopback: tokens would cross the network readable. Listen on 127.0.0.1, or pass --allow-plain-http on a network you trust")
            }
            logger.warning("serving plain HTTP on \(listen), an address other than loopback (--allow-plain-http)")
        }
        let folder = URL(fileURLWithPath: dataDir, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
            .standardizedFileURL
        if reset, FileManager.default.fileExists(atPath: folder.path) {
            say("removing \(folder.path)")
            try FileManager.default.removeItem(at: folder)
        }
        // PostgreSQL asks every connection, local ones too, for a password kept beside the tokens (0600):
        // another user of this machine reaches the port but not the data.
        let database = try EmbeddedPostgres(dataDirectory: folder.appending(path: "postgres"),
                                            socketDirectory: folder.appending(path: "run"), port: port, listenOnTCP: true,
                                            password: try Self.databasePassword(in: folder))
        if !database.isInitialized { say("initialising a new PostgreSQL cluster in \(database.dataDirectory.path) …") }
        try database.initializeIfNeeded()
        if database.isRunning {
            throw ValidationError("PostgreSQL already runs on \(database.dataDirectory.path): is another `taskyard dev` running here?")
        }
        try database.start()
        if database.trustsConnections {
            say("giving the PostgreSQL cluster a password (it trusted every local connection before)")
            try await database.requirePassword()
        }
        defer {
            say("stopping PostgreSQL …")
            do { try database.stop(mode: .fast) } catch { say("could not stop PostgreSQL: \(error)") }
            say("stopped; the data stays in \(folder.path) (--reset starts over)")
        }

        try await createDatabaseIfNeeded(database)
        var connection = database.configuration(database: "taskyard")
        // The servers' key file, beside the dev tokens: it seals the signing keys in the database.
        let keyFilePath = folder.appending(path: "server.key").path
        let keyFile = FileManager.default.fileExists(atPath: keyFilePath)
            ? try KeyFile.load(path: keyFilePath) : try KeyFile.create(path: keyFilePath)
        var serverConfiguration = ServerConfiguration(keyFile: keyFile)
        connection.sessionSettings = serverConfiguration.databaseSessionSettings
        let store = try await Runtime.openStore(database: connection, poolSize: 10, migrate: true, logger: logger)
        do {
            _ = try await store.clusters.createCluster(id: Self.cluster, name: "Taskyard dev")
        } catch let error as TaskyardError where error.kind == .conflict {}

        let tokens = try await DevTokens(folder: folder, credentials: store.credentials)
        let adminToken = try await tokens.admin()

        // First in, last out: the store's connections close after the server and the agents have stopped.
        var services: [any Service] = try tracing.services(serviceName: "taskyard-dev") + [StoreService(store: store)]
        serverConfiguration.host = address.host
        serverConfiguration.port = address.port
        let serverURL = "http://\(address.host):\(address.port)"
        let banner = banner(serverURL: serverURL, database: database, tokenFile: tokens.adminFile.path)
        _ = adminToken
        services.append(try TaskyardHTTPServer.application(store: store, configuration: serverConfiguration, logger: logger) { _ in
            say(banner)
        })
        for (index, node) in Self.nodes.enumerated() {
            var agent = AgentConfiguration(server: serverURL, cluster: Self.cluster, node: node)
            agent.listenPort = agentPort + index
            agent.handlersDirectory = handlersFolder
            agent.shutdownGrace = .seconds(5)
            agent.token = try await tokens.node(node, cluster: Self.cluster)
            services += try NodeAgent(configuration: agent, logger: logger).services
        }
        try await Runtime.run(services, logger: logger)
    }

    /// The dev database's superuser password, in `postgres-password` (mode 0600) in the data folder: made
    /// on first use, kept after.
    static func databasePassword(in folder: URL) throws -> String {
        let file = folder.appending(path: "postgres-password")
        if let data = FileManager.default.contents(atPath: file.path) {
            let password = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !password.isEmpty { return password }
        }
        // The folder as the cluster's own setup makes it: PostgreSQL's user must pass through it.
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        // URL-safe, so that it can stand in a database URL as it is.
        let password = String(TokenSecret.generate().dropFirst(TokenSecret.prefix.count))
        try? FileManager.default.removeItem(at: file)
        guard FileManager.default.createFile(atPath: file.path, contents: Data((password + "\n").utf8),
                                             attributes: [.posixPermissions: 0o600])
        else { throw ValidationError("cannot write \(file.path)") }
        return password
    }

    private func createDatabaseIfNeeded(_ server: EmbeddedPostgres) async throws {
        let admin = try await PostgresConnection.connect(server.configuration())
        let exists: Bool = try await admin.perform { connection in
            try connection.query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS found", ["taskyard"])
                .single().decode("found")
        }
        if !exists { try await admin.perform { connection in try connection.execute("CREATE DATABASE taskyard") } }
        await admin.close()
    }

    private func banner(serverURL: String, database: EmbeddedPostgres, tokenFile: String) -> String {
        func shown(_ path: String) -> String {
            path.hasPrefix(FileManager.default.currentDirectoryPath + "/")
                ? String(path.dropFirst(FileManager.default.currentDirectoryPath.count + 1)) : path
        }
        let shownFile = shown(tokenFile)
        let shownFolder = shown(URL(fileURLWithPath: tokenFile).deletingLastPathComponent().path)
        let agents = Self.nodes.enumerated().map { "\($1) http://127.0.0.1:\(agentPort + $0)" }.joined(separator: ", ")
        return """

            Taskyard dev is up.
              server     \(serverURL)   (health: \(serverURL)/readyz)
              agents     \(agents)   cluster \(Self.cluster)
              database   postgres://postgres@127.0.0.1:\(port)/taskyard   (password: \(shownFolder)/postgres-password)
              log        \(database.logFile.path)
              admin token \(shownFile)   (mode 0600; the taskyard command line here reads it by itself)

            Submit a task:
              curl -s -X POST \(serverURL)/api/v1/clusters/\(Self.cluster)/tasks -H 'Content-Type: application/json' \\
                   -H "Authorization: Bearer $(cat \(shownFile))" \\
                   -d '{"type": "echo", "participating_nodes": ["n1", "n2", "n3"], "payload": {"name": "vol1"}}'
            Watch it:
              swift run taskyard task list
              \(serverURL)/ui   (the dashboard: paste the admin token)
            Ask the history:
              PGPASSWORD=$(cat \(shownFolder)/postgres-password) psql -h 127.0.0.1 -p \(port) -U postgres taskyard

            Ctrl-C stops everything.
            """
    }
}

/// The tokens of a dev deployment, kept in the data folder and reused while valid: `admin-token` for the
/// command line and curl, one node token per agent in `node-tokens/`.
struct DevTokens {
    let folder: URL
    let credentials: CredentialStore
    var adminFile: URL { folder.appending(path: "admin-token") }

    init(folder: URL, credentials: CredentialStore) async throws {
        self.folder = folder
        self.credentials = credentials
        try TokenFiles(folder: folder.appending(path: "node-tokens"), credentials: credentials).prepareFolder()
    }

    func admin() async throws -> String {
        try await TokenFiles(folder: folder, credentials: credentials)
            .token(named: "admin-token", TokenRequest(kind: .client, name: "dev admin", scopes: [.admin]))
    }

    func node(_ node: String, cluster: String) async throws -> String {
        try await TokenFiles(folder: folder.appending(path: "node-tokens"), credentials: credentials)
            .token(named: node, TokenRequest(kind: .node, name: "dev \(node)", clusterID: cluster, nodeID: node))
    }
}
