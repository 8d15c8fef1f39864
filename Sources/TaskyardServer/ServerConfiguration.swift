import TaskyardSecurity
import TaskyardDomain

/// How `taskyard serve` behaves. Every field has a flag and an environment variable in the CLI.
public struct ServerConfiguration: Sendable {
    /// Address to listen on. Default 127.0.0.1: exposing the API is a deliberate choice.
    public var host = "127.0.0.1"
    /// Port to listen on; 0 picks a free one (tests). Default 8080.
    public var port = 8080
    /// Certificate and key to serve HTTPS with; nil serves plain HTTP (fine on loopback only: tokens and
    /// grants are bearer credentials).
    public var tls: TLSFiles?
    /// A client connection idle this long between requests, or stalled this long while sending one, is
    /// closed (slow or vanished clients do not hold connections forever). Default 60 s.
    public var idleTimeout: Duration = .seconds(60)
    /// Client connections open at once; one more is closed as soon as it is accepted. Default 4096 (a
    /// long poll per agent holds one, and each client a few).
    public var maximumConnections = 4096
    /// Connections beyond `maximumConnections` that only agents (node tokens) are served on, so that
    /// clients holding every connection cannot stop polls and reports. Default 256.
    public var nodeConnectionReserve = 256
    /// Change streams and waits one token may hold open on one server at once; more get 429. Default 8.
    public var maximumStreamsPerToken = 8
    /// The same per client address, whatever tokens it uses. Default 64 (a proxy in front of many clients
    /// shows as one address: raise it there).
    public var maximumStreamsPerAddress = 64
    /// Largest request body accepted; larger gets 413. Default 1 MiB: a batch of 1,000 small tasks fits.
    public var maximumBodyBytes = 1 << 20
    /// Lease given to a claimed task; the agent renews it by heartbeat. Default 30 s.
    public var lease: Duration = .seconds(30)
    /// How long a grant outlives its claim's lease (a rollback grant, its issue): the longest a participant
    /// call may run, as the agents' `--participant-timeout` says (or the task's `timeout_seconds`, when
    /// shorter). A grant lets its holder cancel the run and ask its progress for that long. Default 300 s.
    public var participantTimeout: Duration = .seconds(300)
    public var authentication = AuthenticationConfiguration()
    /// Longest a statement of the server may run before PostgreSQL cancels it (503). Default 30 s.
    public var statementTimeout: Duration = .seconds(30)
    /// Longest a statement waits for a lock held by someone else (a manual `LOCK`, a migration) before
    /// it gives up (503): requests fail fast instead of hanging. Default 5 s.
    public var lockTimeout: Duration = .seconds(5)
    /// A connection left idle inside a transaction this long is closed by PostgreSQL. Default 60 s.
    public var idleInTransactionTimeout: Duration = .seconds(60)

    /// The settings that put these bounds on every connection of the server's pool.
    public var databaseSessionSettings: [String: String] {
        func milliseconds(_ duration: Duration) -> String { "\(duration.wholeMilliseconds)ms" }
        return ["statement_timeout": milliseconds(statementTimeout), "lock_timeout": milliseconds(lockTimeout),
                "idle_in_transaction_session_timeout": milliseconds(idleInTransactionTimeout)]
    }
    /// Most reports one `…/states` request may carry. Default 1000.
    public var maximumReportBatch = 1000
    /// Longest `wait` a poll may ask for (the contract's maximum). Default 60 s.
    public var maximumPollWait: Duration = .seconds(60)
    /// A waiting poll is woken by notifications; it also looks for work this often, for a notification
    /// lost while the listening connection reconnected and for delayed tasks coming due. Default 2 s.
    public var pollRecheckInterval: Duration = .seconds(2)
    /// How soon a waiting poll looks again while its node has a due task whose slots are taken (gang
    /// admission, concurrency keys): freed slots wake nobody. Doubles while the task keeps waiting, up to
    /// `pollRecheckInterval`. Default 100 ms.
    public var slotRecheckInterval: Duration = .milliseconds(100)
    /// Longest `timeout` a wait may ask for (the contract's maximum). Default 300 s.
    public var maximumWait: Duration = .seconds(300)
    /// A waiting request re-reads its task this often even without a notification, in case one was
    /// lost while the listening connection reconnected. Default 5 s.
    public var waitRecheckInterval: Duration = .seconds(5)
    /// Run the maintenance duties when this replica holds the leader lock. Default true; a replica
    /// with false never takes part.
    public var maintenanceEnabled = true
    public var maintenanceLeader = MaintenanceLeader.Configuration()
    public var leaseExpirer = LeaseExpirer.Configuration()
    public var nodeMonitor = NodeMonitor.Configuration()
    public var schedules = ScheduleRunner.Configuration()
    public var webhooks = WebhookDispatcher.Configuration()
    public var stats = StatsRollup.Configuration()
    /// A streaming standby for history reads (`serve --read-database-url`); nil reads everything from the
    /// primary.
    public var readReplica: ReadReplica.Configuration?
    public var retention = RetentionCleaner.Configuration()
    public var statistics = StatisticsKeeper.Configuration()

    /// The servers' key file: it seals the clusters' signing keys in the database. Every replica needs the
    /// same one; there is no server without it.
    public var keyFile: KeyFile

    public init(keyFile: KeyFile) {
        self.keyFile = keyFile
    }
}
