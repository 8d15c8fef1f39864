import Foundation
import Metrics
import Postgres
import Prometheus
import Synchronization
import TaskyardDomain
import TaskyardStore

/// What `GET /metrics` shows, in Prometheus' text format:
/// - counted as it happens (from the store's `TaskActivity`): tasks submitted, claimed and finished, by
///   cluster, type and final state, with pick-up and run-time histograms;
/// - read when scraped: queued and received tasks and the oldest queued one per cluster and node, nodes
///   online and offline (from the database through the partial indexes of live tasks, never the history,
///   and kept for `snapshotLifetime` so that scrapes in a row cost one read), the pool, the requests
///   waiting, maintenance;
/// - HTTP requests, counted by Hummingbird's `MetricsMiddleware` through swift-metrics.
///
/// Label values come from bounded sets: clusters and nodes are registered by administrators and agents,
/// and task types, which any submitter names, are kept for the first `typeLimit` seen in each cluster, the
/// rest counted as `other` (one cluster's submitters cannot spend another's budget).
final class ServerMetrics: Sendable {
    /// The backend of swift-metrics for this process (HTTP requests), with names in Prometheus' style.
    /// swift-metrics takes one backend per process: servers in one process (tests) share it.
    static let http: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.nameAndLabelSanitizer = { name, labels in
            let renamed = [
                "hb.requests": "taskyard_http_requests_total",
                "hb.request.errors": "taskyard_http_request_errors_total",
                "http.server.request.duration": "taskyard_http_request_duration_seconds",
                "http.server.active_requests": "taskyard_http_active_requests",
            ][name] ?? name
            let labelNames = ["http.route": "route", "http.request.method": "method",
                              "http.response.status_code": "status", "error.type": "status"]
            return (renamed, labels.map { (labelNames[$0.0] ?? $0.0, $0.1) })
        }
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    static let typeLimit = 200
    static let snapshotLifetime: Duration = .seconds(2)
    static let otherType = "other"

    private let registry = PrometheusCollectorRegistry()
    private let knownTypes = Mutex<[String: Set<String>]>([:])
    private let store: TaskStore
    private let wakeups: Wakeups
    private let maintenance: MaintenanceLeader
    /// Where the live counts are read: a fresh standby's, else the primary's.
    private let replica: ReadReplica?
    private let snapshot = Mutex<(taken: ContinuousClock.Instant, text: String)?>(nil)

    init(store: TaskStore, wakeups: Wakeups, maintenance: MaintenanceLeader, replica: ReadReplica? = nil) {
        _ = Self.http
        self.store = store
        self.replica = replica
        self.wakeups = wakeups
        self.maintenance = maintenance
        store.activity.observe { [weak self] changes in self?.count(changes) }
    }

    // MARK: - Counted as it happens

    private func count(_ changes: [TaskActivity.Change]) {
        for change in changes {
            switch change {
            case .submitted(let cluster, let type):
                registry.makeCounter(name: "taskyard_tasks_submitted_total", labels: [("cluster", cluster), ("type", label(type, in: cluster))],
                                     help: "Tasks written as queued.").increment()
            case .claimed(let cluster, let type, let waited):
                registry.makeCounter(name: "taskyard_tasks_claimed_total", labels: [("cluster", cluster), ("type", label(type, in: cluster))],
                                     help: "Tasks claimed by their node (each attempt).").increment()
                registry.makeDurationHistogram(name: "taskyard_task_pickup_seconds", labels: [("cluster", cluster)],
                                               buckets: Self.pickupBuckets,
                                               help: "From when a task could first be claimed to its claim.")
                    .record(.milliseconds(waited * 1000))
            case .finished(let cluster, let type, let state, let ran):
                registry.makeCounter(name: "taskyard_tasks_finished_total",
                                     labels: [("cluster", cluster), ("type", label(type, in: cluster)), ("state", state.rawValue)],
                                     help: "Tasks that reached a final state.").increment()
                if let ran {
                    registry.makeDurationHistogram(name: "taskyard_task_run_seconds",
                                                   labels: [("cluster", cluster), ("type", label(type, in: cluster))],
                                                   buckets: Self.runBuckets,
                                                   help: "From the claim of a task's last attempt to its end.")
                        .record(.milliseconds(ran * 1000))
                }
            }
        }
    }

    private static let pickupBuckets: [Duration] = [.milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
                                                    .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                                                    .milliseconds(500), .seconds(1), .seconds(5), .seconds(15), .seconds(60),
                                                    .seconds(300)]
    private static let runBuckets: [Duration] = [.milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(250),
                                                 .milliseconds(500), .seconds(1), .seconds(5), .seconds(15), .seconds(60),
                                                 .seconds(300), .seconds(900), .seconds(3600)]

    /// The type as a label value: itself while fewer than `typeLimit` types were seen in its cluster, else `other`.
    private func label(_ type: String, in cluster: String) -> String {
        knownTypes.withLock { known in
            if known[cluster]?.contains(type) == true { return type }
            guard known[cluster, default: []].count < Self.typeLimit else { return Self.otherType }
            known[cluster, default: []].insert(type)
            return type
        }
    }

    // MARK: - The scrape

    /// The exposition: every family, or only the series of `cluster` (and those of no cluster) for a token
    /// bound to one.
    func exposition(cluster: String?) async throws -> String {
        var text = String(decoding: registry.emitToBuffer() + Self.http.emitToBuffer(), as: UTF8.self)
        text += try await databaseSnapshot()
        text += processSnapshot()
        guard let cluster else { return text }
        let own = "{cluster=\"\(Self.escape(cluster))\""
        return text.split(separator: "\n", omittingEmptySubsequences: false).filter { line in
            guard !line.hasPrefix("#"), let brace = line.firstIndex(of: "{"), line[brace...].hasPrefix("{cluster=\"") else { return true }
            return line[brace...].hasPrefix(own)
        }.joined(separator: "\n")
    }

    /// Live tasks and nodes as the database has them, read at most once per `snapshotLifetime`.
    private func databaseSnapshot() async throws -> String {
        let now = ContinuousClock.now
        if let cached = snapshot.withLock({ $0 }), now - cached.taken < Self.snapshotLifetime { return cached.text }
        let reads = replica?.reads(for: nil, primary: store.reads) ?? store.reads
        let live = try await reads.liveTaskCounts()
        let nodes = try await reads.nodeCounts()
        var text = Family("taskyard_tasks", type: "gauge", help: "Tasks queued or received now, by cluster, node and state.")
        var oldest = Family("taskyard_oldest_queued_task_age_seconds", type: "gauge",
                            help: "Age of the oldest queued task, by cluster and node.")
        for row in live {
            text.add(["cluster": row.cluster, "node": row.node, "state": row.state.rawValue], Double(row.count))
            if let age = row.oldestQueuedAge { oldest.add(["cluster": row.cluster, "node": row.node], age) }
        }
        var online = Family("taskyard_nodes", type: "gauge", help: "Registered nodes, by cluster and status.")
        for row in nodes { online.add(["cluster": row.cluster, "status": row.status], Double(row.count)) }
        let rendered = text.text + oldest.text + online.text
        snapshot.withLock { $0 = (now, rendered) }
        return rendered
    }

    private func processSnapshot() -> String {
        let pool = store.connections
        var connections = Family("taskyard_db_pool_connections", type: "gauge", help: "Database pool connections, by state.")
        connections.add(["state": "in_use"], Double(pool.open - pool.idle))
        connections.add(["state": "idle"], Double(pool.idle))
        var waiting = Family("taskyard_db_pool_waiting_requests", type: "gauge", help: "Requests waiting for a pooled connection.")
        waiting.add([:], Double(pool.waiting))
        let held = wakeups.waiting
        var polls = Family("taskyard_waiting_requests", type: "gauge",
                           help: "Requests held until something happens: long polls and task waits.")
        polls.add(["kind": "poll"], Double(held.polls))
        polls.add(["kind": "wait"], Double(held.waits))
        var leader = Family("taskyard_maintenance_leader", type: "gauge", help: "1 while this server runs maintenance.")
        leader.add([:], maintenance.isLeader ? 1 : 0)
        var runs = Family("taskyard_maintenance_duty_runs_total", type: "counter",
                          help: "Maintenance duty runs on this server, by duty and outcome.")
        for (duty, counts) in maintenance.dutyRuns.sorted(by: { $0.key < $1.key }) {
            runs.add(["duty": duty, "outcome": "ok"], Double(counts.ok))
            runs.add(["duty": duty, "outcome": "failed"], Double(counts.failed))
        }
        return connections.text + waiting.text + polls.text + leader.text + runs.text
    }

    /// One family written by hand: for values read at scrape time, whose series come and go.
    struct Family {
        let name: String
        var text: String

        init(_ name: String, type: String, help: String) {
            self.name = name
            text = "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }

        /// Labels in the order given (cluster first, so that a cluster's series can be told at a glance).
        mutating func add(_ labels: KeyValuePairs<String, String>, _ value: Double) {
            let rendered = labels.isEmpty ? "" : "{" + labels.map { "\($0.key)=\"\(ServerMetrics.escape($0.value))\"" }.joined(separator: ",") + "}"
            text += "\(name)\(rendered) \(value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value))\n"
        }
    }

    /// A label value as the text format writes it.
    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
