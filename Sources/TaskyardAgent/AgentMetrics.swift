import Foundation
import Prometheus
import Synchronization
import TaskyardClient
import TaskyardSecurity

/// What `GET /metrics` on the agent's endpoint shows, in Prometheus' text format: tasks held, participant
/// calls served, handler runs by type and outcome with their durations, report batches and their sizes.
/// Its own registry, not swift-metrics' process-wide backend: an agent may share its process with a
/// server (`taskyard dev`, tests) and must show only its own work.
final class AgentMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()

    /// The participant calls this endpoint served, by route and outcome, and the batches: kept here, not in
    /// the registry, so that the agent can tell them too (`NodeAgent.participantCalls`).
    private struct Served {
        var single = (answered: 0, refused: 0)
        var batch = (answered: 0, refused: 0)
        var batches = 0
    }
    private let served = Mutex(Served())

    /// A call that came to the participant endpoint: `route` single or batch; refused when its grant (or
    /// its body) did not let it in, else answered (the handler ran, whatever it answered).
    func participantCall(route: Route, refused: Bool) {
        served.withLock { served in
            switch (route, refused) {
            case (.single, false): served.single.answered += 1
            case (.single, true): served.single.refused += 1
            case (.batch, false): served.batch.answered += 1
            case (.batch, true): served.batch.refused += 1
            }
        }
    }

    enum Route { case single, batch }

    func participantBatch() {
        served.withLock { $0.batches += 1 }
    }

    /// Batches served, the calls they held, and the calls that came alone.
    var participantCalls: (batches: Int, batchedCalls: Int, singleCalls: Int) {
        served.withLock { ($0.batches, $0.batch.answered + $0.batch.refused, $0.single.answered + $0.single.refused) }
    }

    /// A handler run on this node (for a call from another agent or for this agent's own fan-out).
    /// `type` is a type this node has a handler for, or `unknown`: a bounded set.
    func handlerRun(type: String, outcome: String, duration: Duration?) {
        registry.makeCounter(name: "taskyard_agent_handler_runs_total", labels: [("type", type), ("outcome", outcome)],
                             help: "Handler runs on this node, by task type and outcome.").increment()
        if let duration {
            registry.makeDurationHistogram(name: "taskyard_agent_handler_duration_seconds", labels: [("type", type)],
                                           buckets: Self.durationBuckets,
                                           help: "How long handler runs took, by task type.").record(duration)
        }
    }

    /// A batch of reports the server answered, with how many of its reports it took (200) and refused.
    func reportBatch(size: Int, taken: Int) {
        registry.makeCounter(name: "taskyard_agent_report_batches_total",
                             help: "Report batches the server took.").increment()
        registry.makeValueHistogram(name: "taskyard_agent_report_batch_size", buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
                                    help: "Reports per batch.").record(Double(size))
        for (outcome, count) in [("taken", taken), ("refused", size - taken)] where count > 0 {
            registry.makeCounter(name: "taskyard_agent_reports_total", labels: [("outcome", outcome)],
                                 help: "Reports the server answered: taken (written) or refused (stale, or invalid).").increment(by: Int64(count))
        }
    }

    private static let durationBuckets: [Duration] = [.milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100),
                                                      .milliseconds(250), .seconds(1), .seconds(5), .seconds(15), .seconds(60),
                                                      .seconds(300), .seconds(900), .seconds(3600)]

    func exposition(heldTasks: Int) -> String {
        let served = self.served.withLock { $0 }
        return String(decoding: registry.emitToBuffer(), as: UTF8.self)
            + "# HELP taskyard_agent_tasks_held Tasks this agent holds now (claimed, not yet reported).\n"
            + "# TYPE taskyard_agent_tasks_held gauge\ntaskyard_agent_tasks_held \(heldTasks)\n"
            + "# HELP taskyard_agent_participant_calls_total Participant calls served by this agent's endpoint.\n"
            + "# TYPE taskyard_agent_participant_calls_total counter\n"
            + "taskyard_agent_participant_calls_total{route=\"single\",outcome=\"answered\"} \(served.single.answered)\n"
            + "taskyard_agent_participant_calls_total{route=\"single\",outcome=\"refused\"} \(served.single.refused)\n"
            + "taskyard_agent_participant_calls_total{route=\"batch\",outcome=\"answered\"} \(served.batch.answered)\n"
            + "taskyard_agent_participant_calls_total{route=\"batch\",outcome=\"refused\"} \(served.batch.refused)\n"
            + "# HELP taskyard_agent_participant_batches_total Batches of participant calls served by this agent's endpoint.\n"
            + "# TYPE taskyard_agent_participant_batches_total counter\n"
            + "taskyard_agent_participant_batches_total \(served.batches)\n"
    }
}

/// Who may scrape an agent: a client token with `read` on the agent's cluster, as the server decides it.
/// The scraper's secret never leaves the agent: a token of a shape no issued token has is refused here,
/// and for the others the agent sends only the token's SHA-256, with its own node token
/// (`POST …/scrape-check`), and keeps the verdict for `lifetime` (a revocation reaches it within that
/// time). At most `checksPerSecond` checks a second reach the server; past that a scrape gets 429.
final class ScrapeGate: Sendable {
    enum Verdict: Sendable, Equatable {
        case allowed
        case refused(status: Int)
    }

    static let lifetime: Duration = .seconds(10)
    static let remembered = 64
    static let checksPerSecond = 5

    private let client: TaskyardClient
    let cluster: String
    private let node: String
    private let verdicts = Mutex<[String: (verdict: Verdict, until: ContinuousClock.Instant)]>([:])
    /// Checks sent in the current second, and when it began.
    private let recentChecks = Mutex<(count: Int, since: ContinuousClock.Instant)>((0, .now))

    init(client: TaskyardClient, cluster: String, node: String) {
        self.client = client
        self.cluster = cluster
        self.node = node
    }

    /// The verdict for an `Authorization` header: 401 without a bearer token or for one the server
    /// refuses, 403 for one that may not read the cluster, 429 past the rate of checks, 503 when the
    /// server cannot be asked.
    func check(authorization: String?) async -> Verdict {
        guard let authorization, authorization.hasPrefix("Bearer ") else { return .refused(status: 401) }
        let token = String(authorization.dropFirst(7))
        guard TokenSecret.isWellFormed(token) else { return .refused(status: 401) }
        let digest = TokenSecret.hash(token)
        let now = ContinuousClock.now
        if let known = verdicts.withLock({ $0[digest] }), known.until > now { return known.verdict }
        let allowed = recentChecks.withLock { recent in
            if now - recent.since >= .seconds(1) { recent = (0, now) }
            recent.count += 1
            return recent.count <= Self.checksPerSecond
        }
        guard allowed else { return .refused(status: 429) }
        let verdict: Verdict
        do {
            let status = try await client.scrapeCheck(cluster: cluster, node: node, tokenSHA256: digest)
            verdict = status == 200 ? .allowed : .refused(status: status == 403 ? 403 : 401)
        } catch {
            return .refused(status: 503)
        }
        verdicts.withLock { verdicts in
            if verdicts.count >= Self.remembered { verdicts = verdicts.filter { $0.value.until > now } }
            if verdicts.count < Self.remembered { verdicts[digest] = (verdict, now + Self.lifetime) }
        }
        return verdict
    }
}
