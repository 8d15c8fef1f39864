import EmbeddedPostgres
import Foundation
import TaskyardSecurity
import TaskyardClient

/// The server and agents of a benchmark, each a `taskyard` process of its own (this very binary), so that
/// their memory and CPU are theirs alone, as in a deployment.
final class BenchProcesses: Sendable {
    struct Child: Sendable {
        let role: String
        let pid: pid_t
        let log: URL
    }

    /// Every server's URL; agent i uses server i mod the count, the bench's requests take turns.
    let serverURLs: [String]
    /// The servers the bench started (none when it uses a running one).
    let servers: [Child]
    let agents: [Child]

    /// Starts `serverCount` servers (unless `serverURL` names a running one) and one agent per node.
    /// `adminToken` is what the bench's own client uses; `nodeTokenFiles` holds each agent's token;
    /// `serveOptions` go to every server, `agentOptions` to every agent.
    static func start(databaseURL: String, serverURL: String?, serverCount: Int, cluster: String, nodes: [String],
                      agentConcurrency: Int, logFolder: URL, adminToken: String,
                      nodeTokenFiles: [String: String], serveOptions: [String] = [], agentOptions: [String] = []) async throws -> BenchProcesses {
        let binary = try Self.taskyardBinary()
        var servers: [Child] = []
        var urls: [String] = []
        if let serverURL {
            urls = [serverURL]
        } else {
            // The servers' key file, in the bench's folder: every replica seals and opens the keys with it.
            let keyFile = logFolder.appending(path: "server.key").path
            if !FileManager.default.fileExists(atPath: keyFile) { try KeyFile.create(path: keyFile) }
            for (index, port) in LocalPorts.free(serverCount).enumerated() {
                urls.append("http://127.0.0.1:\(port)")
                let log = logFolder.appending(path: serverCount == 1 ? "server.log" : "server-\(index + 1).log")
                let pid = try Subprocess.spawn(binary, ["serve", "--key-file", keyFile, "--database-url", databaseURL, "--listen", "127.0.0.1:\(port)",
                                                        "--no-migrate", "--log-level", "warning"] + serveOptions, outputPath: log.path)
                servers.append(Child(role: serverCount == 1 ? "server" : "server \(index + 1)", pid: pid, log: log))
            }
        }
        for (index, url) in urls.enumerated() {
            let client = TaskyardClient(baseURL: url, token: adminToken)
            try await waitFor("the server at \(url) to be ready", child: servers.indices.contains(index) ? servers[index] : nil) {
                (try? await client.health("readyz")) == 200
            }
        }
        let client = TaskyardClient(baseURL: urls[0], token: adminToken)

        // Agents run as nodes run them: the lean taskyard-agent built next to this binary, else `taskyard agent`.
        let leanAgent = URL(fileURLWithPath: binary).deletingLastPathComponent().appending(path: "taskyard-agent").path
        let (agentBinary, agentCommand) = FileManager.default.isExecutableFile(atPath: leanAgent)
            ? (leanAgent, [String]()) : (binary, ["agent"])
        let ports = LocalPorts.free(nodes.count)
        var agents: [Child] = []
        for (index, (node, port)) in zip(nodes, ports).enumerated() {
            let log = logFolder.appending(path: "agent-\(node).log")
            let pid = try Subprocess.spawn(agentBinary, agentCommand + [
                "--server", urls[index % urls.count], "--cluster", cluster, "--node", node, "--listen", "127.0.0.1:\(port)",
                "--token-file", nodeTokenFiles[node] ?? "",
                "--concurrency", String(agentConcurrency), "--log-level", "warning",
                // Every agent's fan-outs at once may reach each node: a deployment run at this
                // concurrency gives its handlers as many slots, and its nodes as much capacity (the bench
                // measures the queue; gang admission is checked on every claim, and holds nothing back here).
                "--max-handler-runs", String(agentConcurrency * nodes.count),
                "--capacity", String(agentConcurrency * nodes.count),
            ] + agentOptions, outputPath: log.path)
            agents.append(Child(role: "agent \(node)", pid: pid, log: log))
        }
        // A bench killed hard (Ctrl-C twice, kill -9) must not leave its server and agents polling on.
        try Subprocess.stopWhenProcessExits(getpid(), children: (servers + agents).map(\.pid))
        let processes = BenchProcesses(serverURLs: urls, servers: servers, agents: agents)
        try await waitFor("\(nodes.count) agents to register", child: nil) {
            guard processes.agents.allSatisfy({ Self.isRunning($0.pid) }) else {
                throw BenchError("an agent exited at start; see the logs in \(logFolder.path)")
            }
            let online = (try? await client.nodes(cluster: cluster))?.filter { nodes.contains($0.id) && $0.status == .online }
            return online?.count == nodes.count
        }
        return processes
    }

    private init(serverURLs: [String], servers: [Child], agents: [Child]) {
        self.serverURLs = serverURLs
        self.servers = servers
        self.agents = agents
    }

    /// SIGTERM to every child, then SIGKILL to any still there after 10 s.
    func stop() async {
        let children = agents + servers
        for child in children { kill(child.pid, SIGTERM) }
        for child in children where await Subprocess.wait(child.pid, timeout: .seconds(10)) == nil {
            kill(child.pid, SIGKILL)
            _ = await Subprocess.wait(child.pid, timeout: .seconds(5))
        }
    }

    /// Resident memory of a process in bytes, from /proc (Linux).
    static func residentBytes(of pid: pid_t) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return nil }
        return kilobytes * 1024
    }

    /// Whether a child is still running (one that exited is reaped here).
    private static func isRunning(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == 0
    }

    /// The `taskyard` built beside this program: it serves (and runs agents where `taskyard-agent` is not built).
    private static func taskyardBinary() throws -> String {
        let own = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let path = URL(fileURLWithPath: own).deletingLastPathComponent().appending(path: "taskyard").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw BenchError("cannot find the taskyard binary beside taskyard-bench to start the server and agents (\(path)): build every product (swift build -c release)")
        }
        return path
    }

    private static func waitFor(_ what: String, child: Child?, _ ready: @Sendable () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while !(try await ready()) {
            if let child, !Self.isRunning(child.pid) {
                throw BenchError("the \(child.role) exited while waiting for \(what); its log: \(child.log.path)")
            }
            guard ContinuousClock.now < deadline else { throw BenchError("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
