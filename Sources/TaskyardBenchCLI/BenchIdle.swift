import Foundation
import Postgres
import Synchronization
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardStore

/// What a fleet of idle agents costs: `count` nodes, each with a node token of its own, holding a long
/// poll on the servers (node i on server i mod N) as agents with nothing to do do, measured over a window.
struct BenchIdle: Sendable {
    struct Cost: Codable, Sendable {
        var polls: Int
        var servers: Int
        var seconds: Double
        /// Cores busy, summed over the servers, and PostgreSQL's.
        var serverCores: Double
        var postgresCores: Double
        var commitsPerSecond: Double
        /// Polls answered (each empty, at the end of its wait) a second, over all servers.
        var pollsAnsweredPerSecond: Double
        var serverPeakBytes: Int
        /// Connections the servers hold to PostgreSQL at the end of the window.
        var databaseConnections: Int
    }

    let count: Int
    let pollWait: Duration
    let window: Duration

    func measure(store: TaskStore, cluster: String, processes: BenchProcesses, progress: BenchProgress) async throws -> Cost {
        progress.finish("registering \(count) idle nodes …")
        let credentials = CredentialStore(pool: store.pool)
        // One client (one connection each) per node: their long polls are held open at once.
        let transport = try HTTPTransport.dedicated(connectionsPerHost: count)
        var clients: [(node: String, client: TaskyardClient)] = []
        for index in 1...count {
            let node = "idle-\(index)"
            let secret = try await BenchTokens.nodeToken(cluster: cluster, node: node, credentials: credentials)
            let client = TaskyardClient(baseURL: processes.serverURLs[index % processes.serverURLs.count], token: secret, transport: transport)
            _ = try await client.registerNode(cluster: cluster, node: node, RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            clients.append((node, client))
        }
        let answered = PollCount()
        let wait = pollWait
        let cost = try await withThrowingTaskGroup(of: Void.self) { group in
            for (node, client) in clients {
                group.addTask {
                    while !Task.isCancelled {
                        do {
                            _ = try await client.poll(cluster: cluster, node: node, wait: wait, limit: 1)
                            answered.value.add(1, ordering: .relaxed)
                        } catch is CancellationError {
                            return
                        } catch {
                            try? await Task.sleep(for: .milliseconds(500))
                        }
                    }
                }
            }
            progress.finish("\(count) polls held open; settling for 5 s, then measuring \(window) …")
            try await Task.sleep(for: .seconds(5))
            let peaks = MemoryPeaks(processes)
            let cpuBefore = CPUSnapshot(processes)
            let commitsBefore = try await Self.commits(store)
            let answeredBefore = answered.value.load(ordering: .relaxed)
            let started = ContinuousClock.now
            while ContinuousClock.now - started < window {
                peaks.sample()
                try await Task.sleep(for: .seconds(1))
            }
            let seconds = Double((ContinuousClock.now - started).components.seconds)
                + Double((ContinuousClock.now - started).components.attoseconds) / 1e18
            let cpuAfter = CPUSnapshot(processes)
            let cost = Cost(polls: count, servers: processes.servers.count, seconds: seconds,
                            serverCores: (cpuAfter.servers - cpuBefore.servers) / seconds,
                            postgresCores: (cpuAfter.postgres - cpuBefore.postgres) / seconds,
                            commitsPerSecond: Double(try await Self.commits(store) - commitsBefore) / seconds,
                            pollsAnsweredPerSecond: Double(answered.value.load(ordering: .relaxed) - answeredBefore) / seconds,
                            serverPeakBytes: peaks.server ?? 0,
                            databaseConnections: try await Self.serverConnections(store))
            group.cancelAll()
            return cost
        }
        // Every poll has ended with the group: the client may go.
        try await transport.client.shutdown()
        return cost
    }

    static func commits(_ store: TaskStore) async throws -> Int {
        try await store.pool.query(BenchSQL.commits).single().decode("n", as: Int.self)
    }

    static func serverConnections(_ store: TaskStore) async throws -> Int {
        try await store.pool.query(BenchSQL.serverConnections, ["taskyard"]).single().decode("n", as: Int.self)
    }
}

/// Polls answered so far, shared by the pollers.
private final class PollCount: Sendable {
    let value = Atomic<Int>(0)
}
