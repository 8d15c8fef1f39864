import TaskyardCommandLine
import Foundation
import Synchronization
import Postgres
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardStore

/// The phases of `taskyard-bench`. Times come from the database (`created_at`, `received_at`,
/// `finished_at`, all on this machine's clock) and, for the idle pick-up, from the moment the client
/// sent the submit; nothing is timed inside the server.
struct BenchWorkload: Sendable {
    let store: TaskStore
    /// One client per server; requests go round-robin.
    let clients: [TaskyardClient]
    let cluster: String
    let nodes: [String]
    let participants: Int
    /// The task type every task has (`noop`, or `echo`: each participant returns the payload as its result).
    let type: String
    /// Every task's payload.
    let payload: RawJSON
    let progress: BenchProgress

    /// Latencies in milliseconds.
    struct Percentiles: Codable, Sendable {
        var p50: Double
        var p95: Double
        var p99: Double

        init(p50: Double, p95: Double, p99: Double) {
            (self.p50, self.p95, self.p99) = (p50, p95, p99)
        }

        /// From unsorted samples.
        init(_ samples: [Double]) {
            let sorted = samples.sorted()
            func at(_ fraction: Double) -> Double {
                guard !sorted.isEmpty else { return .nan }
                return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * fraction).rounded()))]
            }
            self.init(p50: at(0.5), p95: at(0.95), p99: at(0.99))
        }
    }

    /// The client of the `index`th request: the servers take turns.
    func client(_ index: Int) -> TaskyardClient { clients[index % clients.count] }

    /// The participating nodes of the `index`th task: `participants` nodes, starting at a rotating one.
    func participatingNodes(_ index: Int) -> [String] {
        (0..<participants).map { nodes[(index + $0) % nodes.count] }
    }

    // MARK: - Idle pick-up

    /// Submits `samples` tasks one at a time to waiting agents, each after the previous finished:
    /// submit → received (pick-up) and submit → completed, measured from the moment the client sent it.
    func idleLatency(samples: Int) async throws -> (pickUp: Percentiles, completion: Percentiles) {
        var sentAt: [Int64: Date] = [:]
        for index in 0..<samples {
            let sent = Date()
            let task = try await client(index).submit(cluster: cluster, request(index))
            sentAt[task.id] = sent
            _ = try await client(index).wait(cluster: cluster, id: task.id, timeout: .seconds(30))
            // Let the agent get back into its long-poll: the next submit must find it waiting.
            try await Task.sleep(for: .milliseconds(5))
            progress.update("idle pick-up: \(index + 1)/\(samples)")
        }
        let rows = try await store.pool.query(BenchSQL.times, [cluster, Array(sentAt.keys)])
        var pickUp: [Double] = []
        var completion: [Double] = []
        for row in rows {
            let id: Int64 = try row.decode("id")
            guard let sent = sentAt[id], let received: Date = try row.decode("received_at"),
                  let finished: Date = try row.decode("finished_at") else { continue }
            pickUp.append(received.timeIntervalSince(sent) * 1000)
            completion.append(finished.timeIntervalSince(sent) * 1000)
        }
        return (Percentiles(pickUp), Percentiles(completion))
    }

    // MARK: - Throughput

    struct Throughput: Sendable {
        var tasksPerSecond: Double
        var completion: Percentiles
        var failed: Int
    }

    /// Submits `count` tasks (in batches of `batchSize`, or one by one from 32 concurrent clients) and
    /// waits for all of them to finish; tasks/s from the first submit to the last finish.
    func throughput(count: Int, bulk: Bool, batchSize: Int, label: String) async throws -> Throughput {
        let firstID = try await store.pool.query(BenchSQL.lastID, [cluster]).single().decode("last_id", as: Int64.self)
        let started = Date()
        let submitted = SubmitCounter()
        let submitFailure = Mutex<String?>(nil)
        let submitting = Task {
            do {
                try await submitAll()
            } catch {
                submitFailure.withLock { $0 = "\(error)" }
            }
        }
        @Sendable func submitAll() async throws {
            try await withThrowingTaskGroup(of: Void.self) { group in
                let chunks = stride(from: 0, to: count, by: bulk ? batchSize : 1).map { $0..<min(count, $0 + (bulk ? batchSize : 1)) }
                let next = SubmitCounter()
                for _ in 0..<(bulk ? 2 : 32) {
                    group.addTask {
                        while true {
                            let index = next.take()
                            guard index < chunks.count else { return }
                            let requests = chunks[index].map(request)
                            if bulk {
                                _ = try await client(index).submitBatch(cluster: cluster, requests)
                            } else {
                                _ = try await client(index).submit(cluster: cluster, requests[0])
                            }
                            submitted.add(requests.count)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        var finished = 0
        var lastChange = ContinuousClock.now
        while finished < count {
            try await Task.sleep(for: .milliseconds(250))
            let now = try await store.pool.query(BenchSQL.finishedCount, [cluster, firstID, started]).single().decode("finished", as: Int.self)
            if now != finished { lastChange = .now }
            finished = now
            let elapsed = Date().timeIntervalSince(started)
            progress.update("\(label): submitted \(submitted.value)/\(count), finished \(finished)/\(count), \(Int(Double(finished) / max(elapsed, 0.001))) tasks/s")
            if let failure = submitFailure.withLock({ $0 }) { throw BenchError("submitting failed: \(failure)") }
            if ContinuousClock.now - lastChange > .seconds(60) {
                submitting.cancel()
                throw BenchError("no task finished for 60 s (\(finished)/\(count) finished): see the server and agent logs")
            }
        }
        await submitting.value
        let summary = try await store.pool.query(BenchSQL.summary, [cluster, firstID]).single()
        let lastFinished: Date = try summary.decode("last_finished")
        return Throughput(
            tasksPerSecond: Double(count) / lastFinished.timeIntervalSince(started),
            completion: Percentiles(p50: try summary.decode("p50"), p95: try summary.decode("p95"), p99: try summary.decode("p99")),
            failed: try summary.decode("failed"))
    }

    // MARK: - Metrics

    /// What `GET /metrics` costs: five scrapes each after the server's 2 s cache of the database read ran
    /// out, and five right after one (cached).
    func scrapeCost(families: Int) async throws -> BenchReport.MetricsScrape {
        var reading: [Double] = [], cached: [Double] = []
        let clock = ContinuousClock()
        for _ in 0..<5 {
            try await Task.sleep(for: .milliseconds(2100))
            let started = clock.now
            _ = try await client(0).metrics()
            reading.append((clock.now - started).inSeconds * 1000)
            let again = clock.now
            _ = try await client(0).metrics()
            cached.append((clock.now - again).inSeconds * 1000)
        }
        return .init(families: families, databaseReadMilliseconds: BenchReport.median(reading),
                     cachedMilliseconds: BenchReport.median(cached))
    }

    // MARK: - Steady rate

    struct Steady: Codable, Sendable {
        /// Tasks per second asked for and submitted.
        var rate: Double
        var submittedPerSecond: Double
        var seconds: Double
        var tasks: Int
        /// From the moment the client sent the submit.
        var pickUp: Percentiles
        var completion: Percentiles
        var failed: Int
    }

    /// Submits one task per request at `rate` a second for `seconds` (open loop: a submit is sent at its
    /// time whether or not the ones before it were answered, up to 512 in flight), waits for all to
    /// finish, and measures submit → received and submit → completed from the moment each was sent.
    func steady(rate: Double, seconds: Double, label: String) async throws -> Steady {
        let count = max(1, Int(rate * seconds))
        let sentAt = SendTimes()
        let clock = ContinuousClock()
        let started = clock.now
        let startedDate = Date()
        try await withThrowingTaskGroup(of: Void.self) { group in
            var inFlight = 0
            for index in 0..<count {
                let due = started + .seconds(Double(index) / rate)
                if due > clock.now { try await Task.sleep(until: due, clock: clock) }
                if inFlight >= 512 {
                    try await group.next()
                    inFlight -= 1
                }
                inFlight += 1
                group.addTask {
                    let sent = Date()
                    let task = try await client(index).submit(cluster: cluster, request(index))
                    sentAt.record(task.id, sent)
                }
                if index % 100 == 0 { progress.update("\(label): submitted \(index)/\(count)") }
            }
            try await group.waitForAll()
        }
        let submitSeconds = Date().timeIntervalSince(startedDate)
        let sent = sentAt.all
        let ids = Array(sent.keys)
        let deadline = clock.now + .seconds(120)
        while true {
            let finished = try await store.pool.query(BenchSQL.finishedOf, [cluster, ids]).single().decode("finished", as: Int.self)
            progress.update("\(label): finished \(finished)/\(count)")
            if finished == ids.count { break }
            guard clock.now < deadline else { throw BenchError("\(count - finished) tasks of the steady run did not finish within 120 s") }
            try await Task.sleep(for: .milliseconds(200))
        }
        var pickUp: [Double] = []
        var completion: [Double] = []
        var failed = 0
        for row in try await store.pool.query(BenchSQL.times, [cluster, ids]) {
            guard let sentTime = sent[try row.decode("id", as: Int64.self)], let received: Date = try row.decode("received_at"),
                  let finished: Date = try row.decode("finished_at") else { continue }
            if try row.decode("state", as: String.self) != "completed" { failed += 1 }
            pickUp.append(received.timeIntervalSince(sentTime) * 1000)
            completion.append(finished.timeIntervalSince(sentTime) * 1000)
        }
        return Steady(rate: rate, submittedPerSecond: Double(count) / submitSeconds, seconds: seconds, tasks: count,
                      pickUp: Percentiles(pickUp), completion: Percentiles(completion), failed: failed)
    }

    // MARK: - The raw SQL ceiling

    struct RawCeiling: Codable, Sendable {
        /// Submit, claim and complete, as the end-to-end run does them, without HTTP.
        var tasksPerSecond: Double
        /// Claim and complete only, on tasks already queued.
        var claimAndCompletePerSecond: Double
    }

    /// The same statements the server runs — batch insert, poll, batched report — straight through libpq
    /// on `rawCluster`, one claimer per node taking `claimBatch` at a time.
    func rawCeiling(rawCluster: String, count: Int, batchSize: Int, claimBatch: Int, label: String) async throws -> RawCeiling {
        _ = try await store.clusters.createCluster(id: rawCluster, name: "taskyard bench: raw SQL")
        for node in nodes { _ = try await store.clusters.registerNode(cluster: rawCluster, id: node, endpoint: "http://127.0.0.1:9") }
        let started = ContinuousClock.now
        for start in stride(from: 0, to: count, by: batchSize) {
            let submissions = (start..<min(count, start + batchSize)).map { index in
                TaskSubmission(type: type, participatingNodes: participatingNodes(index), payload: payload)
            }
            _ = try await store.submissions.submitBatch(submissions, cluster: rawCluster)
            progress.update("\(label): inserted \(min(count, start + batchSize))/\(count)")
        }
        // What the server's statistics keeper does within seconds of such growth.
        _ = try await store.maintenance.refreshStaleStatistics()
        let claiming = ContinuousClock.now
        let done = SubmitCounter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for node in nodes {
                group.addTask {
                    while true {
                        let tasks = try await store.queue.claim(cluster: rawCluster, node: node, limit: claimBatch, lease: .seconds(30))
                        if tasks.isEmpty { return }
                        let reports = tasks.map { task in
                            (task.id, TaskReport(attempt: task.attempt, lease: task.lease, state: .completed, result: [:], participants: task.participatingNodes.map {
                                ParticipantOutcome(node: $0, state: .completed, result: nil, startedAt: Date(), finishedAt: Date())
                            }))
                        }
                        let outcomes = try await store.queue.reportBatch(reports, cluster: rawCluster, node: node)
                        for case .failure(let error) in outcomes { throw error }
                        done.add(tasks.count)
                        progress.update("\(label): completed \(done.value)/\(count)")
                    }
                }
            }
            try await group.waitForAll()
        }
        let finished = ContinuousClock.now
        return RawCeiling(tasksPerSecond: Double(count) / (finished - started).inSeconds,
                          claimAndCompletePerSecond: Double(count) / (finished - claiming).inSeconds)
    }
}

extension BenchWorkload {
    /// What PostgreSQL itself does here with the same work, the physical ceiling: each task inserted,
    /// claimed (`FOR UPDATE SKIP LOCKED`) and completed, each step with its event row, 100 tasks per
    /// statement and commit, from `connections` connections at once, on tables of their own with the
    /// same durability. Tasks/s.
    func physicalCeiling(count: Int, connections: Int, label: String) async throws -> Double {
        try await store.pool.withConnection { connection in
            try connection.execute(PhysicalCeilingSQL.create)
        }
        let done = SubmitCounter()
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<connections {
                group.addTask {
                    let node = "node-\(worker)"
                    let share = count / connections + (worker < count % connections ? 1 : 0)
                    try await store.pool.withConnection { connection in
                        var remaining = share
                        while remaining > 0 {
                            let batch = min(100, remaining)
                            try connection.query(PhysicalCeilingSQL.insert, [node, batch])
                            let claimed = try connection.query(PhysicalCeilingSQL.claim, [node, batch])
                                .map { row throws(PostgresError) in try row.decode("id", as: Int64.self) }
                            try connection.query(PhysicalCeilingSQL.complete, [claimed])
                            remaining -= batch
                        }
                    }
                    done.add(1)
                }
            }
            try await group.waitForAll()
        }
        let seconds = (ContinuousClock.now - started).inSeconds
        try await store.pool.withConnection { connection in try connection.execute(PhysicalCeilingSQL.drop) }
        progress.finish("\(label): \(Int(Double(count) / seconds)) tasks/s")
        return Double(count) / seconds
    }
}

/// The physical ceiling's own tables and statements: a task row and an event row per step, no more.
enum PhysicalCeilingSQL {
    static let create = """
        DROP TABLE IF EXISTS bench_physical_events, bench_physical_tasks;
        CREATE TABLE bench_physical_tasks (
            id bigserial PRIMARY KEY, node text NOT NULL, state text NOT NULL, payload jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(), received_at timestamptz, finished_at timestamptz);
        CREATE INDEX bench_physical_claim ON bench_physical_tasks (node, id) WHERE state = 'queued';
        CREATE TABLE bench_physical_events (
            id bigserial PRIMARY KEY, task_id bigint NOT NULL, to_state text NOT NULL, at timestamptz NOT NULL DEFAULT now());
        """
    static let drop = "DROP TABLE IF EXISTS bench_physical_events, bench_physical_tasks"

    static let insert = PostgresStatement("bench.physical_insert", """
        WITH inserted AS (
            INSERT INTO bench_physical_tasks (node, state, payload)
            SELECT $1, 'queued', '{}' FROM generate_series(1, $2::integer)
            RETURNING id
        )
        INSERT INTO bench_physical_events (task_id, to_state) SELECT id, 'queued' FROM inserted
        """)

    static let claim = PostgresStatement("bench.physical_claim", """
        WITH picked AS (
            SELECT id FROM bench_physical_tasks WHERE node = $1 AND state = 'queued'
             ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
        ), claimed AS (
            UPDATE bench_physical_tasks t SET state = 'received', received_at = now()
              FROM picked WHERE t.id = picked.id
            RETURNING t.id
        ), events AS (
            INSERT INTO bench_physical_events (task_id, to_state) SELECT id, 'received' FROM claimed
        )
        SELECT id FROM claimed
        """)

    static let complete = PostgresStatement("bench.physical_complete", """
        WITH completed AS (
            UPDATE bench_physical_tasks SET state = 'completed', finished_at = now()
             WHERE id = ANY ($1::bigint[]) AND state = 'received'
            RETURNING id
        )
        INSERT INTO bench_physical_events (task_id, to_state) SELECT id, 'completed' FROM completed
        """)
}

/// When each task's submit was sent, recorded by concurrent submitters.
final class SendTimes: Sendable {
    private let times = Mutex<[Int64: Date]>([:])
    var all: [Int64: Date] { times.withLock { $0 } }
    func record(_ id: Int64, _ sent: Date) { times.withLock { $0[id] = sent } }
}

/// A counter shared by concurrent submitters.
final class SubmitCounter: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func add(_ amount: Int) { count.withLock { $0 += amount } }
    /// The current value, then one more.
    func take() -> Int { count.withLock { value in defer { value += 1 }; return value } }
}

/// One line that redraws itself on a terminal, and prints now and then otherwise.
final class BenchProgress: Sendable {
    private let lastPrinted = Mutex(ContinuousClock.now - .seconds(10))
    private let interactive = isatty(STDERR_FILENO) == 1
    let quiet: Bool

    init(quiet: Bool) { self.quiet = quiet }

    func update(_ line: String) {
        guard !quiet else { return }
        let due = lastPrinted.withLock { last -> Bool in
            let interval: Duration = interactive ? .milliseconds(100) : .seconds(2)
            guard ContinuousClock.now - last >= interval else { return false }
            last = .now
            return true
        }
        guard due else { return }
        let text = interactive ? "\r\u{1B}[K" + line : line + "\n"
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Ends the redrawn line with a final state.
    func finish(_ line: String) {
        guard !quiet else { return }
        FileHandle.standardError.write(Data(((interactive ? "\r\u{1B}[K" : "") + line + "\n").utf8))
        lastPrinted.withLock { $0 = ContinuousClock.now - .seconds(10) }
    }
}


/// The bench's own reads: measurements over the tasks of one run.
enum BenchSQL {
    /// `--webhook`'s delivery log at the end.
    static let webhookDeliveries = PostgresStatement("bench.webhook_deliveries", """
        SELECT count(*) FILTER (WHERE state = 'delivered')::integer AS delivered,
               count(*) FILTER (WHERE state = 'pending')::integer AS pending
          FROM webhook_deliveries
        """)

    static let lastID = PostgresStatement("bench.last_id", """
        SELECT coalesce(max(id), 0) AS last_id FROM tasks WHERE cluster_id = $1
        """)

    /// Through the finished-roots index from the run's start: the bench's own reads must not compete
    /// with the work they measure (a count over every task of the run took 25 ms at 20,000 tasks).
    static let finishedCount = PostgresStatement("bench.finished_count", """
        SELECT count(*) AS finished FROM tasks
         WHERE parent_id IS NULL AND state IN ('completed', 'failed', 'cancelled') AND finished_at >= $3::timestamptz
           AND cluster_id = $1 AND id > $2
        """)

    static let summary = PostgresStatement("bench.summary", """
        SELECT max(finished_at) AS last_finished,
               count(*) FILTER (WHERE state <> 'completed') AS failed,
               percentile_cont(0.50) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at)) * 1000 AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at)) * 1000 AS p95,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at)) * 1000 AS p99
          FROM tasks WHERE cluster_id = $1 AND id > $2 AND parent_id IS NULL
        """)

    static let times = PostgresStatement("bench.times", """
        SELECT id, state, received_at, finished_at FROM tasks WHERE cluster_id = $1 AND id = ANY ($2::bigint[])
        """)

    static let finishedOf = PostgresStatement("bench.finished_of", """
        SELECT count(*) AS finished FROM tasks_finished WHERE cluster_id = $1 AND id = ANY ($2::bigint[])
        """)

    static let settings = PostgresStatement("bench.settings", """
        SELECT current_setting('server_version') AS version, current_setting('synchronous_commit') AS synchronous_commit,
               current_setting('fsync') AS fsync
        """)

    static let finishedRows = PostgresStatement("bench.finished_rows", """
        SELECT count(*) AS rows FROM tasks_finished
        """)

    /// Each statement's calls and time so far in this database (pg_stat_statements).
    static let statementTimes = PostgresStatement("bench.statement_times", """
        SELECT query, calls::float8 AS calls, total_exec_time AS milliseconds FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        """)

    /// Row writes so far of the tables in $1, and how many indexes each has.
    static let tableWrites = PostgresStatement("bench.table_writes", """
        SELECT n.name, sum(s.n_tup_ins)::float8 AS inserts, sum(s.n_tup_upd)::float8 AS updates,
               sum(s.n_tup_hot_upd)::float8 AS hot_updates, sum(s.n_tup_del)::float8 AS deletes,
               max((SELECT count(*) FROM pg_index i WHERE i.indrelid = s.relid))::integer AS indexes
          FROM unnest($1::text[]) n(name)
          JOIN pg_stat_user_tables s
            ON s.relname = n.name
            OR s.relid IN (SELECT relid FROM pg_partition_tree(n.name::regclass) WHERE isleaf)
         GROUP BY n.name
        """)

    /// Transactions committed in the whole PostgreSQL server so far.
    static let commits = PostgresStatement("bench.commits", """
        SELECT sum(xact_commit)::bigint AS n FROM pg_stat_database
        """)

    /// Connections of the application named $1 now: the servers' (the bench's own name themselves apart).
    static let serverConnections = PostgresStatement("bench.server_connections", """
        SELECT count(*)::integer AS n FROM pg_stat_activity WHERE application_name = $1
        """)

    /// Whether pg_stat_statements can be read here (loaded by the server, and created in this database).
    static let enableStatementTimes = "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
}
