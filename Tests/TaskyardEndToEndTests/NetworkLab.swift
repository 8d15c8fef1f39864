import EmbeddedPostgres
import Foundation
import Postgres
import Synchronization
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport
import Testing

/// Hosts of their own for a test: a Linux network namespace per host, each with an address on one
/// network (10.77.0.0/24) whose packets pass through a switch in user space (`Tests/Network/switch.py`)
/// that delays, drops and cuts them as the test says. Made by the test (as root), torn down after it —
/// and, should the test process die first, by a watcher that outlives it. No packet leaves the test's
/// own namespaces.
///
/// Why a switch of our own and not `tc netem`: the kernels of this project's machines and CI are built
/// without netem (CONFIG_NET_SCH_NETEM), and a TUN device is all the switch needs.
final class NetworkLab: @unchecked Sendable {  // the switch's pipes are used under `commandLock`
    /// Host name → its address.
    let addresses: [String: String]
    /// This lab's namespaces are `<prefix>-<host>`.
    let prefix: String
    private let switchProcess: Process
    private let switchInput: FileHandle
    private let switchOutput: FileHandle
    private let commandLock = Mutex(())

    /// Whether this machine lets a test make hosts: root, `ip`, `/dev/net/tun`, and a namespace made.
    static let available: Bool = {
        guard geteuid() == 0, FileManager.default.fileExists(atPath: "/dev/net/tun"),
              FileManager.default.isExecutableFile(atPath: ip) else { return false }
        let probe = "typrobe\(getpid())"
        guard (try? run(ip, ["netns", "add", probe])) != nil else { return false }
        _ = try? run(ip, ["netns", "del", probe])
        return true
    }()

    static let ip = "/usr/sbin/ip"

    func namespace(_ host: String) -> String { "\(prefix)-\(host)" }

    /// Makes the hosts (`name: last byte of the address`), their devices and the switch; `body` runs with
    /// them; everything is torn down after.
    static func with<T>(hosts: [String: Int], _ body: (NetworkLab) async throws -> T) async throws -> T {
        let lab = try NetworkLab(hosts: hosts)
        do {
            let result = try await body(lab)
            lab.tearDown()
            return result
        } catch {
            lab.tearDown()
            throw error
        }
    }

    private init(hosts: [String: Int]) throws {
        let prefix = "ty\(String(UUID().uuidString.prefix(6)).lowercased())"
        let addresses = hosts.mapValues { "10.77.0.\($0)" }
        self.prefix = prefix
        self.addresses = addresses
        let namespaces = hosts.keys.sorted().map { "\(prefix)-\($0)" }
        // Should this process die before tearing down, its namespaces (and what runs in them) go with it.
        let removal = namespaces.map { "\(Self.ip) netns pids \($0) 2>/dev/null | xargs -r kill -KILL; \(Self.ip) netns del \($0)" }
            .joined(separator: "; ")
        try Subprocess.spawn("/usr/bin/setsid", ["sh", "-c", "while kill -0 \(getpid()) 2>/dev/null; do sleep 0.5; done; \(removal)"])
        for host in hosts.keys.sorted() {
            let namespace = "\(prefix)-\(host)"
            try Self.run(Self.ip, ["netns", "add", namespace])
            try Self.run(Self.ip, ["-n", namespace, "link", "set", "lo", "up"])
            try Self.run(Self.ip, ["-n", namespace, "tuntap", "add", "dev", "tun0", "mode", "tun"])
            try Self.run(Self.ip, ["-n", namespace, "addr", "add", "\(addresses[host]!)/24", "dev", "tun0"])
            try Self.run(Self.ip, ["-n", namespace, "link", "set", "tun0", "up"])
        }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appending(path: "Network/switch.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path] + hosts.keys.sorted().map { "\(prefix)-\($0)=\(addresses[$0]!)" }
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        switchProcess = process
        switchInput = input.fileHandleForWriting
        switchOutput = output.fileHandleForReading
        // Answered once every device is open.
        _ = try command("stats")
    }

    /// Sends the switch a command (see switch.py) and returns its answer.
    @discardableResult
    func command(_ line: String) throws -> String {
        try commandLock.withLock { _ in
            switchInput.write(Data((line + "\n").utf8))
            var answer = Data()
            while true {
                let chunk = switchOutput.availableData
                if chunk.isEmpty { throw DeploymentError("the network switch ended; its command was \(line)") }
                answer.append(chunk)
                let text = String(decoding: answer, as: UTF8.self)
                if text.hasSuffix("ok\n") { return text }
                if text.contains("error:") { throw DeploymentError("the network switch refused \(line): \(text)") }
            }
        }
    }

    /// Every packet from now on: `delay` ± `jitter` one way, `loss` percent dropped.
    func impair(delay: Duration, jitter: Duration, loss: Double) throws {
        try command("delay \(delay.wholeMilliseconds) \(jitter.wholeMilliseconds) \(loss)")
    }

    func cut(_ a: String, from b: String) throws { try command("cut \(namespace(a)) \(namespace(b))") }
    func heal(_ a: String, with b: String) throws { try command("heal \(namespace(a)) \(namespace(b))") }

    /// Starts `executable` on `host`; its output goes to `log`.
    func spawn(on host: String, _ executable: String, _ arguments: [String], log: URL) throws -> pid_t {
        try Subprocess.spawn(Self.ip, ["netns", "exec", namespace(host), executable] + arguments, outputPath: log.path)
    }

    private func tearDown() {
        try? switchInput.close()
        switchProcess.terminate()
        for host in addresses.keys {
            let namespace = namespace(host)
            // What still runs there (a server, an agent, PostgreSQL) ends with its host.
            if let pids = try? Self.run(Self.ip, ["netns", "pids", namespace]) {
                for pid in pids.split(separator: "\n").compactMap({ pid_t($0) }) { kill(pid, SIGKILL) }
            }
            _ = try? Self.run(Self.ip, ["netns", "del", namespace])
        }
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        try Subprocess.capture(executable, arguments)
    }
}

/// A Taskyard deployment across a `NetworkLab`: PostgreSQL on host `db`, server replicas `s1` and `s2`,
/// and an agent on each of the agent hosts, every one a real process on a host of its own. The test
/// reaches the database through PostgreSQL's Unix socket (a file, not the lab's network): it submits
/// and checks through the store, while every request of the product crosses the lab's network.
final class LabDeployment: Sendable {
    let lab: NetworkLab
    let store: TaskStore
    let pool: PostgresPool
    let database: EmbeddedPostgres
    /// Running processes by host.
    let processes = Mutex<[String: pid_t]>([:])
    let folder: URL
    let agents: [String]

    private init(lab: NetworkLab, store: TaskStore, pool: PostgresPool, database: EmbeddedPostgres, folder: URL, agents: [String]) {
        self.lab = lab
        self.store = store
        self.pool = pool
        self.database = database
        self.folder = folder
        self.agents = agents
    }
    /// Where executable handlers write what they did (the hosts share this machine's files).
    var marks: URL { folder.appending(path: "marks") }

    static let servers = ["s1", "s2"]
    static let hosts: [String: Int] = ["db": 1, "s1": 2, "s2": 3, "a1": 11, "a2": 12, "a3": 13]

    /// The database URL every server uses: libpq notices a dead path in seconds (connect_timeout for a new
    /// connection; tcp_user_timeout and keepalives for one that was open) instead of waiting on TCP for
    /// many minutes: the settings the README recommends.
    static func databaseURL(_ address: String) -> String {
        "postgres://postgres@\(address):5432/postgres?connect_timeout=2&tcp_user_timeout=4000"
            + "&keepalives=1&keepalives_idle=2&keepalives_interval=1&keepalives_count=2"
    }

    /// PostgreSQL notices a client whose host went away within seconds, and ends its session (a replica's
    /// maintenance lock among what it held), instead of after the kernel's two hours of keepalive.
    static let deadPeerSettings = ["tcp_keepalives_idle": "2", "tcp_keepalives_interval": "1", "tcp_keepalives_count": "2",
                                   "tcp_user_timeout": "4000"]

    static func run<T: Sendable>(
        serverArguments: [String] = [], agentArguments: [String] = [], handlers: [String: String] = [:],
        _ body: (LabDeployment) async throws -> T
    ) async throws -> T {
        try await NetworkLab.with(hosts: hosts) { lab in
            let folder = URL(fileURLWithPath: "/tmp/\(lab.prefix)")
            try FileManager.default.createDirectory(at: folder.appending(path: "marks"), withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            var database = try EmbeddedPostgres(dataDirectory: folder.appending(path: "pg/data"), socketDirectory: folder.appending(path: "pg"),
                                                settings: TestDatabase.throwAwaySettings.merging(deadPeerSettings) { $1 })
            database.networkHost = (lab.namespace("db"), lab.addresses["db"]!)
            try database.initializeIfNeeded()
            // The lab's hosts are let in as the loopback is (trust: a private server of a test).
            let hba = database.dataDirectory.appending(path: "pg_hba.conf")
            let rules = try String(contentsOf: hba, encoding: .utf8) + "\nhost all all 10.77.0.0/24 trust\n"
            try rules.write(to: hba, atomically: false, encoding: .utf8)
            try database.start()
            let pool = PostgresPool(configuration: database.configuration(), options: .init(maximumConnections: 4))
            _ = try await Migrator.bundled().migrate(pool)
            let store = TaskStore(pool: pool)
            _ = try await store.clusters.createCluster(id: "c1", name: "lab")

            let handlersFolder = try TestEnvironment.makeExecutables(handlers.mapValues {
                $0.replacingOccurrences(of: "$MARKS", with: folder.appending(path: "marks").path)
            })
            let agents = hosts.keys.filter { $0.hasPrefix("a") }.sorted()
            let deployment = LabDeployment(lab: lab, store: store, pool: pool, database: database, folder: folder, agents: agents)
            do {
                let binary = try #require(TestEnvironment.taskyardBinary, "the taskyard executable should be built next to the tests")
                for server in servers {
                    try deployment.start(on: server, binary.path, [
                        "serve", "--key-file", TestEnvironment.keyFilePath, "--database-url", databaseURL(lab.addresses["db"]!),
                        "--listen", "\(lab.addresses[server]!):8080", "--allow-plain-http", "--no-migrate", "--log-level", "info",
                    ] + serverArguments)
                }
                let serverList = servers.map { "http://\(lab.addresses[$0]!):8080" }.joined(separator: ",")
                for agent in agents {
                    let token = try await store.mintNodeToken(cluster: "c1", node: agent)
                    let tokenFile = folder.appending(path: "\(agent).token")
                    guard FileManager.default.createFile(atPath: tokenFile.path, contents: Data(token.utf8), attributes: [.posixPermissions: 0o600])
                    else { throw DeploymentError("cannot write \(tokenFile.path)") }
                    try deployment.start(on: agent, binary.path, [
                        "agent", "--server", serverList, "--cluster", "c1", "--node", agent, "--listen", "\(lab.addresses[agent]!):7001",
                        "--token-file", tokenFile.path, "--handlers", handlersFolder.path, "--allow-plain-http", "--log-level", "info",
                    ] + agentArguments)
                }
                try await eventually("the agents register across the lab's network", within: .seconds(60)) {
                    try deployment.checkRunning()
                    return try await store.clusters.nodes(cluster: "c1").filter { $0.status == .online }.count == agents.count
                }
                let result = try await body(deployment)
                deployment.stopAll()
                await pool.close()
                try? database.stop(mode: .immediate)
                try? FileManager.default.removeItem(at: handlersFolder)
                return result
            } catch {
                deployment.printLogs()
                deployment.stopAll()
                await pool.close()
                try? database.stop(mode: .immediate)
                try? FileManager.default.removeItem(at: handlersFolder)
                throw error
            }
        }
    }

    func log(of host: String) -> URL { folder.appending(path: "\(host).log") }

    func start(on host: String, _ executable: String, _ arguments: [String]) throws {
        let pid = try lab.spawn(on: host, executable, arguments, log: log(of: host))
        processes.withLock { $0[host] = pid }
    }

    /// Throws when a process has ended (a bad flag, a port taken): waiting for it would be in vain.
    func checkRunning() throws {
        for (host, pid) in processes.withLock({ $0 }) {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { throw DeploymentError("the process on \(host) ended (status \(status))") }
        }
    }

    func stopAll() {
        for (_, pid) in processes.withLock({ $0 }) {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }

    /// The processes' logs' last lines, for a test that failed.
    func printLogs() {
        for host in processes.withLock({ $0.keys.sorted() }) {
            let text = (try? String(contentsOf: log(of: host), encoding: .utf8)) ?? ""
            print("--- \(host) (last lines)\n" + text.split(separator: "\n").suffix(15).joined(separator: "\n"))
        }
    }
}
