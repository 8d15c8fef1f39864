import Foundation
import Postgres

/// A private PostgreSQL server in a folder of its own, run from the PostgreSQL binaries installed on the
/// machine: `initdb` on first use, then `pg_ctl start`/`stop`. Used by the test suite and `taskyard dev`.
///
/// PostgreSQL refuses to run as root; as root, every command runs as the `postgres` system user and the
/// folder is handed to that user.
public struct EmbeddedPostgres: Sendable {
    /// The cluster's files (PGDATA).
    public let dataDirectory: URL
    /// Where the server puts its Unix socket; clients connect through it.
    public let socketDirectory: URL
    /// The port number; with `listenOnTCP` false it only names the socket file.
    public let port: Int
    /// Also listen on 127.0.0.1:port (for psql users and tools that want TCP).
    public let listenOnTCP: Bool
    /// A test's network host: the Linux network namespace the server runs in (`ip netns exec`), and the
    /// address it listens on there beside its socket. Nil: this machine's, on loopback only.
    public var networkHost: (namespace: String, address: String)?
    /// Server settings passed with `-c` (for tests: `fsync=off` and the like).
    public let settings: [String: String]
    public let binDirectory: URL
    public let superuser = "postgres"
    /// The superuser's password: with one, every connection (socket and TCP) authenticates with SCRAM;
    /// without, the server trusts every local connection (fine for a test's private server only).
    public let password: String?

    public var logFile: URL { dataDirectory.deletingLastPathComponent().appending(path: "postgres.log") }

    public init(dataDirectory: URL, socketDirectory: URL, port: Int = 5432, listenOnTCP: Bool = false,
                settings: [String: String] = [:], password: String? = nil, binDirectory: URL? = nil) throws {
        self.password = password
        self.dataDirectory = dataDirectory
        self.socketDirectory = socketDirectory
        self.port = port
        self.listenOnTCP = listenOnTCP
        self.settings = settings
        self.binDirectory = try binDirectory ?? Self.findBinDirectory()
    }

    /// `pg_config --bindir` when it names a folder with `initdb`, else the newest `/usr/lib/postgresql/*/bin`.
    public static func findBinDirectory() throws -> URL {
        if let output = try? Subprocess.capture("/usr/bin/env", ["pg_config", "--bindir"]) {
            let folder = URL(fileURLWithPath: output.trimmingCharacters(in: .whitespacesAndNewlines))
            if FileManager.default.isExecutableFile(atPath: folder.appending(path: "initdb").path) { return folder }
        }
        let root = URL(fileURLWithPath: "/usr/lib/postgresql")
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) {
            let folder = root.appending(path: version).appending(path: "bin")
            if FileManager.default.isExecutableFile(atPath: folder.appending(path: "initdb").path) { return folder }
        }
        throw EmbeddedPostgresError("""
            no PostgreSQL server binaries found (tried `pg_config --bindir` and /usr/lib/postgresql/*/bin); \
            install them, e.g. `apt-get install postgresql`
            """)
    }

    /// Connection settings for a database on this server, through its socket.
    public func configuration(database: String = "postgres") -> PostgresConfiguration {
        configuration(database: database, password: password)
    }

    private func configuration(database: String, password: String?) -> PostgresConfiguration {
        var parameters = ["host": socketDirectory.path, "port": String(port), "user": superuser, "dbname": database]
        if let password { parameters["password"] = password }
        return PostgresConfiguration(parameters: parameters)
    }

    public var isInitialized: Bool {
        FileManager.default.fileExists(atPath: dataDirectory.appending(path: "PG_VERSION").path)
    }

    /// Creates the cluster if the folder has none yet.
    public func initializeIfNeeded() throws {
        guard !isInitialized else { return }
        try prepareDirectory(dataDirectory)
        var arguments = ["-D", dataDirectory.path, "-U", superuser, "--encoding=UTF8", "--locale=C", "--no-sync"]
        // The password goes to initdb in a file only the server's user can read, removed at once.
        var passwordFile: URL?
        defer { if let passwordFile { try? FileManager.default.removeItem(at: passwordFile) } }
        if let password {
            try prepareDirectory(socketDirectory)
            let file = socketDirectory.appending(path: "initdb-password")
            guard FileManager.default.createFile(atPath: file.path, contents: Data((password + "\n").utf8),
                                                 attributes: [.posixPermissions: 0o600]) else {
                throw EmbeddedPostgresError("cannot write \(file.path)")
            }
            passwordFile = file
            try handToSuperuser(file, mode: 0o600)
            arguments += ["--auth=scram-sha-256", "--pwfile=\(file.path)"]
        } else {
            arguments += ["--auth=trust"]
        }
        try run("initdb", arguments)
    }

    /// Whether the cluster's `pg_hba.conf` still trusts connections: made by an earlier version, before
    /// it had a password.
    public var trustsConnections: Bool {
        let rules = (try? String(contentsOf: dataDirectory.appending(path: "pg_hba.conf"), encoding: .utf8)) ?? ""
        return rules.split(separator: "\n").contains { line in
            !line.hasPrefix("#") && line.split(whereSeparator: \.isWhitespace).last == "trust"
        }
    }

    /// Turns a running cluster that trusts every local connection into one that asks for `password`
    /// (SCRAM): sets the superuser's password while trust still lets it in, then rewrites `pg_hba.conf`
    /// and reloads it. The password is passed as a statement parameter, never written into SQL text.
    public func requirePassword() async throws {
        guard let password else { return }
        let connection = try await PostgresConnection.connect(configuration(database: "postgres", password: nil))
        do {
            try await connection.perform { connection in
                _ = try connection.query("SELECT set_config('taskyard.new_password', $1, false) AS set", [password])
                try connection.execute("""
                    DO $$ BEGIN
                        EXECUTE format('ALTER ROLE %I PASSWORD %L', current_user, current_setting('taskyard.new_password'));
                    END $$
                    """)
                _ = try connection.query("SELECT set_config('taskyard.new_password', '', false) AS cleared", [])
            }
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
        let rules = """
            # Written by taskyard: every connection authenticates with the superuser's password (SCRAM).
            local   all   all                  scram-sha-256
            host    all   all   127.0.0.1/32   scram-sha-256
            host    all   all   ::1/128        scram-sha-256

            """
        let file = dataDirectory.appending(path: "pg_hba.conf")
        try Data(rules.utf8).write(to: file)
        try handToSuperuser(file, mode: 0o600)
        try run("pg_ctl", ["-D", dataDirectory.path, "reload"])
    }

    public func start() throws {
        try prepareDirectory(socketDirectory)
        if !FileManager.default.fileExists(atPath: logFile.path) {
            _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        }
        try handToSuperuser(logFile, mode: 0o600)
        let addresses = networkHost?.address ?? (listenOnTCP ? "127.0.0.1" : "")
        var options = ["-k", socketDirectory.path, "-p", String(port), "-c", "listen_addresses=\(addresses)"]
        for (key, value) in settings.sorted(by: { $0.key < $1.key }) { options += ["-c", "\(key)=\(value)"] }
        let quoted = options.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        do {
            // The postmaster is started in the host's namespace; stopping and the rest need none (signals).
            let start = command("pg_ctl", ["-D", dataDirectory.path, "-l", logFile.path, "-w", "-t", "60", "-o", quoted, "start"])
            let inHost = networkHost.map { ["/usr/sbin/ip", "netns", "exec", $0.namespace] + start } ?? start
            _ = try Subprocess.capture(inHost[0], Array(inHost.dropFirst()))
        } catch {
            let log = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
            let tail = log.split(separator: "\n").suffix(8).joined(separator: "\n")
            throw EmbeddedPostgresError("\(error)\nlast lines of \(logFile.path):\n\(tail)")
        }
    }

    public enum StopMode: String, Sendable { case smart, fast, immediate }

    public func stop(mode: StopMode = .fast) throws {
        try run("pg_ctl", ["-D", dataDirectory.path, "-m", mode.rawValue, "-w", "-t", "60", "stop"])
    }

    /// A streaming-replication standby of this (running) server in `dataDirectory`: a base backup taken
    /// with `pg_basebackup -R` over this server's socket (its WAL streamed while it is taken), set to follow
    /// it. Start it with `start()`; it answers reads until `promote()`.
    public func makeStandby(dataDirectory standbyData: URL, socketDirectory standbySocket: URL, port standbyPort: Int,
                            settings standbySettings: [String: String] = [:]) throws -> EmbeddedPostgres {
        try prepareDirectory(standbyData.deletingLastPathComponent())
        try run("pg_basebackup", ["-D", standbyData.path, "-R", "-X", "stream", "-c", "fast", "-h", socketDirectory.path,
                                  "-p", String(port), "-U", superuser, "--no-sync"])
        return try EmbeddedPostgres(dataDirectory: standbyData, socketDirectory: standbySocket, port: standbyPort,
                                    listenOnTCP: listenOnTCP, settings: standbySettings, binDirectory: binDirectory)
    }

    /// Ends recovery on a standby: from then on it is a primary that takes writes.
    public func promote() throws {
        try run("pg_ctl", ["-D", dataDirectory.path, "-w", "-t", "60", "promote"])
    }

    /// The postmaster's process id, from `postmaster.pid` (nil when no server runs here).
    public var postmasterID: pid_t? {
        guard let text = try? String(contentsOf: dataDirectory.appending(path: "postmaster.pid"), encoding: .utf8),
              let first = text.split(separator: "\n").first else { return nil }
        return pid_t(first.trimmingCharacters(in: .whitespaces))
    }

    /// True when a server is running on this data folder.
    public var isRunning: Bool {
        (try? run("pg_ctl", ["-D", dataDirectory.path, "status"])) != nil
    }

    /// Stops the server (immediately) and deletes `folder` once the process `processID` has exited,
    /// even if it crashed: a detached shell watches it.
    public func stopWhenProcessExits(_ processID: Int32, thenRemove folder: URL) throws {
        let pgCtl = command("pg_ctl", ["-D", dataDirectory.path, "-m", "immediate", "stop"])
            .map { "'" + $0 + "'" }.joined(separator: " ")
        let script = """
            while kill -0 \(processID) 2>/dev/null; do sleep 0.5; done
            \(pgCtl) >/dev/null 2>&1
            rm -rf '\(folder.path)'
            """
        try Subprocess.spawn("/usr/bin/setsid", ["sh", "-c", script])
    }

    // MARK: - Running as the right user

    private static var isRoot: Bool { geteuid() == 0 }

    private func command(_ tool: String, _ arguments: [String]) -> [String] {
        let executable = binDirectory.appending(path: tool).path
        return Self.isRoot ? ["/usr/sbin/runuser", "-u", superuser, "--", executable] + arguments
                           : [executable] + arguments
    }

    private func prepareDirectory(_ folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try handToSuperuser(folder, mode: 0o700)
    }

    private func handToSuperuser(_ path: URL, mode: mode_t) throws {
        chmod(path.path, mode)
        guard Self.isRoot else { return }
        guard let account = getpwnam(superuser) else {
            throw EmbeddedPostgresError("running as root, but there is no '\(superuser)' system user to run PostgreSQL as")
        }
        guard chown(path.path, account.pointee.pw_uid, account.pointee.pw_gid) == 0 else {
            throw EmbeddedPostgresError("cannot hand \(path.path) to the \(superuser) user: \(String(cString: strerror(errno)))")
        }
    }

    @discardableResult
    private func run(_ tool: String, _ arguments: [String]) throws -> String {
        let full = command(tool, arguments)
        return try Subprocess.capture(full[0], Array(full.dropFirst()))
    }

}

public struct EmbeddedPostgresError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
