import Logging
import Postgres
import ServiceLifecycle
import Synchronization
import TaskyardStore

/// Runs the maintenance duties on exactly one server replica: the one holding a PostgreSQL advisory
/// lock on a connection of its own. If that replica dies its session ends, PostgreSQL releases the lock,
/// and another replica takes it at its next try (within `retryInterval`). Duties are guarded SQL, so
/// the moment two replicas might overlap during a handover does no harm.
public final class MaintenanceLeader: Service, Sendable {
    public struct Configuration: Sendable {
        /// How often a replica without the lock tries to take it, and how often the leader checks that
        /// it still holds it. Default 2 s: the takeover time after a leader dies.
        public var retryInterval: Duration = .seconds(2)
        /// Shared by every Taskyard server on the database ("tymaint" in ASCII).
        public var lockKey: Int64 = 0x7479_6D61_696E_74
        public init() {}
    }

    private let database: PostgresConfiguration
    private let duties: [any MaintenanceDuty]
    private let context: MaintenanceContext
    private let configuration: Configuration
    private let logger: Logger
    private let leading = Atomic<Bool>(false)
    private let runs = Mutex<[String: (ok: Int, failed: Int)]>([:])

    /// True while this replica holds the lock and runs the duties.
    public var isLeader: Bool { leading.load(ordering: .relaxed) }

    /// The duties' runs on this replica so far, by duty.
    public var dutyRuns: [String: (ok: Int, failed: Int)] { runs.withLock { $0 } }

    public init(store: TaskStore, duties: [any MaintenanceDuty], configuration: Configuration = Configuration(),
                logger: Logger) {
        database = store.database
        context = MaintenanceContext(store: store, logger: logger)
        self.duties = duties
        self.configuration = configuration
        self.logger = logger
    }

    private static let tryLock = PostgresStatement("maintenance.try_lock", "SELECT pg_try_advisory_lock($1::bigint) AS locked")
    private static let ping = PostgresStatement("maintenance.ping", "SELECT 1 AS one")

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.loop() }
        leading.store(false, ordering: .relaxed)
    }

    private func loop() async {
        var connection: PostgresConnection?
        var nextRun: [String: ContinuousClock.Instant] = [:]
        while !Task.isCancelled {
            do {
                if connection == nil || connection?.isBroken == true {
                    if isLeader {
                        logger.warning("lost the maintenance lock with its connection")
                        for duty in duties { await duty.stop() }
                    }
                    leading.store(false, ordering: .relaxed)
                    connection = try await PostgresConnection.connect(database)
                }
                guard let lockConnection = connection else { continue }
                if !isLeader {
                    let locked: Bool = try await lockConnection.perform { connection in
                        try connection.query(Self.tryLock, [self.configuration.lockKey]).single().decode("locked")
                    }
                    if locked {
                        leading.store(true, ordering: .relaxed)
                        logger.info("this server now runs maintenance", metadata: ["duties": "\(duties.map(\.name).joined(separator: ", "))"])
                    }
                } else if !(await lockConnection.isReadyForUse()) {
                    connection = nil
                    continue
                }
                if isLeader {
                    let now = ContinuousClock.now
                    for duty in duties where (nextRun[duty.name] ?? now) <= now {
                        // The lock lives as long as its session: a session that still answers still holds
                        // it. Asked before each duty, so that a replica whose connection died during a long
                        // duty does not start the next one beside the new leader.
                        try await lockConnection.perform { connection in _ = try connection.query(Self.ping) }
                        do {
                            try await duty.run(context)
                            runs.withLock { $0[duty.name, default: (0, 0)].ok += 1 }
                        } catch {
                            runs.withLock { $0[duty.name, default: (0, 0)].failed += 1 }
                            logger.error("maintenance duty failed", metadata: ["duty": "\(duty.name)", "error": "\(error)"])
                        }
                        nextRun[duty.name] = ContinuousClock.now + duty.interval
                    }
                    let soonest = nextRun.values.min() ?? now + configuration.retryInterval
                    try await Task.sleep(until: min(soonest, ContinuousClock.now + configuration.retryInterval))
                } else {
                    try await Task.sleep(for: configuration.retryInterval)
                }
            } catch is CancellationError {
                break
            } catch {
                logger.warning("maintenance cannot reach the database; retrying", metadata: ["error": "\(error)"])
                connection = nil
                try? await Task.sleep(for: configuration.retryInterval)
            }
        }
        leading.store(false, ordering: .relaxed)
        for duty in duties { await duty.stop() }
        await connection?.close()
    }
}
