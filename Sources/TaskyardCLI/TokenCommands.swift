import ArgumentParser
import Foundation
import Postgres
import TaskyardAPI
import TaskyardClient
import TaskyardCommandLine
import TaskyardDomain
import TaskyardSecurity
import TaskyardStore

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Create, list and revoke API tokens.",
        discussion: """
            Client tokens (for people and programs) carry scopes — read, submit, operate, admin — and are bound to one cluster or to all. Node tokens (one per agent) speak only for their node. The server keeps only a SHA-256 digest of each secret: the secret is printed once, when it is made.

            With --database-url the command works straight on the database: that is how the first admin token is made, since the database is the root of trust. Otherwise it goes through the server's API with an admin token.

            Examples:
              taskyard token create --database-url postgres://postgres@127.0.0.1:5433/taskyard --kind client --scope admin --name ops > admin.token
              taskyard token create --kind node --cluster dev --node n4 --name n4 --token-file admin.token > n4.token
              taskyard token list --token-file admin.token
              taskyard token revoke 7 --token-file admin.token
            """,
        subcommands: [Create.self, List.self, Revoke.self, Bootstrap.self]
    )

    /// Where tokens are managed: the database itself, or the API.
    struct Place: ParsableArguments {
        @Option(help: ArgumentHelp("Work straight on this database (PostgreSQL URL or libpq keywords) instead of the API.", valueName: "url"))
        var databaseURL: String?

        @OptionGroup var serverOptions: ServerOptions
        @OptionGroup var logging: LoggingOptions

        enum Target {
            case database(TaskStore)
            case api(TaskyardClient)
        }

        /// On the database, the schema is brought up to date first (under the migrator's lock, as a server
        /// does at start-up): the first admin token can be made before any server has run.
        func target() async throws -> Target {
            if let databaseURL, !databaseURL.isEmpty {
                if serverOptions.server != nil { throw ValidationError("give --database-url or --server, not both") }
                let store = try await Runtime.openStore(database: try PostgresConfiguration(databaseURL), poolSize: 1, migrate: true,
                                                        logger: try logging.makeLogger("taskyard.token"))
                return .database(store)
            }
            return .api(try serverOptions.client())
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a token and print its secret (only the secret, on standard output).",
            discussion: """
                Examples:
                  taskyard token create --database-url URL --kind client --scope admin --name ops
                  taskyard token create --kind client --scope submit --scope read --cluster c1 --name ci --expires-in 90d
                  taskyard token create --kind node --cluster c1 --node n1 --name n1
                """)

        @Option(help: "client or node.") var kind: String = "client"
        @Option(help: ArgumentHelp("A name for people to recognise the token by.", valueName: "name")) var name: String
        @Option(name: .customLong("scope"), help: ArgumentHelp("read, submit, operate or admin; repeat for several (client tokens).", valueName: "scope"))
        var scopes: [String] = []
        @Option(help: ArgumentHelp("Bind the token to this cluster (required for node tokens). Default: every cluster.", valueName: "id"))
        var cluster: String?
        @Option(help: ArgumentHelp("The node a node token speaks for.", valueName: "id")) var node: String?
        @Option(help: ArgumentHelp("Expire after this long, e.g. 90d or 12h. Default: never.", valueName: "duration"))
        var expiresIn: String?
        @OptionGroup var place: Place

        func run() async throws {
            guard let kind = TokenKind(rawValue: kind) else { throw ValidationError("--kind must be client or node") }
            var parsedScopes: [TokenScope] = []
            for scope in scopes {
                guard let parsed = TokenScope(rawValue: scope) else {
                    throw ValidationError("--scope must be read, submit, operate or admin (got \(scope))")
                }
                parsedScopes.append(parsed)
            }
            let expiresAt = try expiresIn.map { Date().addingTimeInterval(try parseDuration($0, option: "--expires-in").inSeconds) }
            let request = TokenRequest(kind: kind, name: name, scopes: parsedScopes, clusterID: cluster, nodeID: node, expiresAt: expiresAt)
            do {
                try request.validate()
            } catch {
                throw ValidationError(error.message)
            }
            switch try await place.target() {
            case .database(let store):
                let secret = TokenSecret.generate()
                _ = try await store.closing { try await $0.credentials.createToken(request, secretHash: TokenSecret.hash(secret)) }
                say(secret)
            case .api(let client):
                guard let secret = try await client.createToken(request).token else { throw ValidationError("the server sent no secret") }
                say(secret)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (never their secrets).",
                                                        discussion: "Example:\n  taskyard token list --token-file admin.token")
        @OptionGroup var place: Place
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let tokens: [TokenObject]
            switch try await place.target() {
            case .database(let store):
                tokens = try await store.closing { try await $0.credentials.tokens() }.map { TokenObject($0) }
            case .api(let client):
                tokens = try await client.tokens()
            }
            if json { return try printJSON(TokenList(tokens: tokens)) }
            var table = Table("ID", "Kind", "Name", "Scopes", "Cluster", "Node", "Created", "Expires", "Last used", "Revoked")
            for token in tokens {
                table.add(String(token.id), token.kind.rawValue, token.name, token.scopes.map(\.rawValue).joined(separator: ","),
                          token.clusterID ?? "all", token.nodeID ?? "", shortTime(token.createdAt), shortTime(token.expiresAt),
                          shortTime(token.lastUsedAt), shortTime(token.revokedAt))
            }
            say(table.rendered)
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a token: every server refuses it within seconds.",
            discussion: "Example:\n  taskyard token revoke 7 --token-file admin.token")
        @Argument(help: "Token id (from token list).") var id: Int64
        @OptionGroup var place: Place

        func run() async throws {
            switch try await place.target() {
            case .database(let store):
                guard try await store.closing({ try await $0.credentials.revokeToken(id: id) }) != nil else {
                    throw ValidationError("token \(id) does not exist")
                }
            case .api(let client):
                try await client.revokeToken(id: id)
            }
            say("revoked token \(id)")
        }
    }
}

extension TokenCommand {
    /// A new deployment's first step, idempotent: the schema, the cluster, an admin token and one token per
    /// node, each written to a file of its own (mode 0600) unless that file already holds a valid token.
    struct Bootstrap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prepare a deployment: migrate, create the cluster, write an admin token and node tokens to files.",
            discussion: """
                Works straight on the database (the root of trust). Writes DIR/admin and DIR/<node> (mode 0600) — with --folder-per-token, DIR/admin/token and DIR/<node>/token instead, so that each folder can be a volume of its own that only its service mounts — keeping any that still hold a valid token, so it can run at every start (docker-compose's setup step runs it).

                Example:
                  taskyard token bootstrap --database-url postgres://taskyard@db/taskyard --cluster dev --node n1 --node n2 --dir /tokens
                """)

        @Option(help: ArgumentHelp("PostgreSQL URL or libpq keywords. Default: $TASKYARD_DATABASE_URL.", valueName: "url"))
        var databaseURL: String?
        @Option(help: ArgumentHelp("The cluster to create (if missing) and bind the node tokens to.", valueName: "id"))
        var cluster: String
        @Option(name: .customLong("node"), help: ArgumentHelp("A node to make a token for; repeat for several.", valueName: "id"))
        var nodes: [String] = []
        @Option(help: ArgumentHelp("Folder for the token files.", valueName: "path"))
        var dir: String
        @Flag(help: "Write each token as `token` in a folder of its own (DIR/admin/, DIR/<node>/), one volume per service.")
        var folderPerToken = false
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let store = try await Runtime.openStore(database: try PostgresConfiguration(try DatabaseURL.resolve(databaseURL)),
                                                    poolSize: 1, migrate: true, logger: try logging.makeLogger("taskyard.token"))
            try await store.closing { store in try await bootstrap(store) }
        }

        private func bootstrap(_ store: TaskStore) async throws {
            do {
                _ = try await store.clusters.createCluster(id: cluster, name: cluster)
                say("created cluster \(cluster)")
            } catch let error as TaskyardError where error.kind == .conflict {}
            let credentials = store.credentials
            let root = URL(fileURLWithPath: dir)
            func write(_ name: String, _ request: TokenRequest) async throws {
                let files = TokenFiles(folder: folderPerToken ? root.appending(path: name) : root, credentials: credentials)
                try files.prepareFolder()
                _ = try await files.token(named: folderPerToken ? "token" : name, request)
            }
            try await write("admin", TokenRequest(kind: .client, name: "admin", scopes: [.admin]))
            for node in nodes {
                try await write(node, TokenRequest(kind: .node, name: node, clusterID: cluster, nodeID: node))
            }
            let layout = folderPerToken ? "<name>/token" : "<name>"
            say("tokens in \(dir) (\(layout)): admin\(nodes.map { ", \($0)" }.joined())")
        }
    }
}

/// Tokens kept in files of one folder (mode 0600), reused while the database still honours them:
/// `taskyard dev` and `taskyard token bootstrap` keep theirs this way.
struct TokenFiles {
    let folder: URL
    let credentials: CredentialStore

    func prepareFolder() throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    func file(named name: String) -> URL { folder.appending(path: name) }

    /// The token in the file `name` while the database still honours it, else a new one written there.
    func token(named name: String, _ request: TokenRequest) async throws -> String {
        let file = file(named: name)
        if let data = FileManager.default.contents(atPath: file.path) {
            let secret = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if let known = try await credentials.token(secretHash: TokenSecret.hash(secret)), known.isValid(),
               known.kind == request.kind, known.nodeID == request.nodeID, known.clusterID == request.clusterID {
                return secret
            }
        }
        let secret = TokenSecret.generate()
        _ = try await credentials.createToken(request, secretHash: TokenSecret.hash(secret))
        try? FileManager.default.removeItem(at: file)
        guard FileManager.default.createFile(atPath: file.path, contents: Data((secret + "\n").utf8),
                                             attributes: [.posixPermissions: 0o600])
        else { throw ValidationError("cannot write \(file.path)") }
        return secret
    }
}
