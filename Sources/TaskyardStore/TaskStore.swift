import Foundation
import Postgres
import TaskyardDomain
import TaskyardSecurity

/// Every read and write of clusters, nodes, tasks and their history, one store per aggregate (`clusters`,
/// `submissions`, `queue`, `reads`, `maintenance`; credentials are `CredentialStore`'s). Statements are in
/// `SQL/`, one file per table; a store binds their parameters, turns rows into domain values, and turns
/// "no row" into the precise `TaskyardError` a client needs (unknown task, stale attempt, already finished, …).
public struct TaskStore: Sendable {
    public struct Configuration: Sendable {
        /// Attempts for a task that does not ask for a number. Default 3.
        public var defaultMaxAttempts = TaskSubmission.Limits.defaultMaxAttempts
        /// Largest batch accepted by `submitBatch`. Default 1000 (the API's limit).
        public var maximumBatchSize = 1000
        /// The wait before a failed attempt runs again (2 s doubling up to 300 s, jittered).
        public var retry = RetryPolicy()
        /// How far ahead a queued task's `run_after` may be for it still to hold its ordering key: a retry's
        /// backoff keeps the order; a task put off further lets the ones behind it go first. The longest
        /// retry backoff.
        var orderingHold: Duration { retry.cap }
        /// Leases per task type, overriding the lease a claim asks for (slow types need longer ones).
        public var leaseByType: [String: Duration] = [:]
        /// Attempts per task type for tasks that do not ask for a number; other types get
        /// `defaultMaxAttempts`.
        public var maxAttemptsByType: [String: Int] = [:]
        /// Execution timeouts per task type, for tasks that do not set `timeout_seconds`.
        public var timeoutSecondsByType: [String: Int] = [:]

        /// The execution timeout of a submission: its own, else its type's, else none.
        func timeoutSeconds(for submission: TaskSubmission) -> Int? {
            submission.timeoutSeconds ?? timeoutSecondsByType[submission.type]
        }
        /// Sizes and shapes of what may be stored; checked before any statement runs.
        public var limits = InputLimits.default

        /// The attempt budget of a submission: its own, else its type's, else the default.
        func maxAttempts(for submission: TaskSubmission) -> Int {
            submission.maxAttempts ?? maxAttemptsByType[submission.type] ?? defaultMaxAttempts
        }

        public init() {}
    }

    /// The stores' connections. `package`: this package's test support and bench read the tables
    /// directly; no part of the product goes around the stores (`StoreBoundaryTests` holds it).
    package let pool: PostgresPool
    public let configuration: Configuration
    /// What the store's committed changes mean to waiting polls and waits, sent after each commit.
    public let signals: TaskSignals
    /// What the store's committed changes did to tasks, for the metrics that count it.
    public let activity: TaskActivity

    /// Clusters and their nodes.
    public let clusters: ClusterStore
    /// Submitting tasks, and what a client asks of one afterwards: cancel, retry, delete.
    public let submissions: SubmissionStore
    /// The agents' side: polls and claims, reports, leases.
    public let queue: QueueStore
    /// Tasks, lists, trees, events and counts, as clients and metrics read them.
    public let reads: TaskReads
    /// What the maintenance leader does: expired leases, offline nodes, retention, statistics, schema.
    public let maintenance: MaintenanceStore
    /// Tokens and signing keys.
    public let credentials: CredentialStore
    /// Schedules: a task request submitted at every slot of a cron expression.
    public let schedules: ScheduleStore
    /// Webhook subscriptions and their deliveries.
    public let webhooks: WebhookStore
    /// The charts' minutes: what finished, queue depth, pick-up and run times.
    public let stats: StatsStore

    /// A store on a pool the caller made (tests); the product opens one with `open`.
    package init(pool: PostgresPool, configuration: Configuration = Configuration(), signals: TaskSignals = TaskSignals(),
                activity: TaskActivity = TaskActivity()) {
        self.pool = pool
        self.configuration = configuration
        self.signals = signals
        self.activity = activity
        let context = StoreContext(pool: pool, configuration: configuration, signals: signals, activity: activity)
        clusters = ClusterStore(context: context)
        submissions = SubmissionStore(context: context, submitGroups: SubmitGroups(maximumGroupSize: configuration.maximumBatchSize))
        queue = QueueStore(context: context)
        reads = TaskReads(context: context)
        maintenance = MaintenanceStore(context: context)
        credentials = CredentialStore(pool: pool)
        schedules = ScheduleStore(context: context, submissions: submissions)
        webhooks = WebhookStore(context: context)
        stats = StatsStore(context: context)
    }

    /// Where the store's connections go (the listener and the maintenance leader's lock open their own there).
    public var database: PostgresConfiguration { pool.configuration }

    /// The pool's connections: open, idle, and requests waiting for one.
    public var connections: PostgresPool.Statistics { pool.statistics }

    /// Closes the store's connections; requests after it fail. `StoreService` calls it at shutdown.
    public func close() async { await pool.close() }
}

extension TaskStore {
    /// A store on a pool of its own, the schema migrated first unless `migrate` is false (`progress` hears of
    /// each migration applied); with what migrating did, or nil.
    public static func open(database: PostgresConfiguration, poolSize: Int, migrate: Bool,
                            configuration: Configuration = Configuration(),
                            progress: @escaping @Sendable (Migration) -> Void = { _ in }) async throws -> (store: TaskStore, migrated: Migrator.Outcome?) {
        var database = database
        // Our statements are short and planned over small live rows; JIT compilation costs more than any of
        // them (seconds when a cost estimate crosses its threshold). A URL or server setting may say otherwise.
        database.sessionSettings["jit"] = database.sessionSettings["jit"] ?? "off"
        let pool = PostgresPool(configuration: database, options: .init(maximumConnections: poolSize))
        let outcome = migrate ? try await Migrator.bundled().migrate(pool, progress: progress) : nil
        return (TaskStore(pool: pool, configuration: configuration), outcome)
    }
}
