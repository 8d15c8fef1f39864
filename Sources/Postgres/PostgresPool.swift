import Synchronization

/// A fixed-size pool of connections.
///
/// Connections are opened lazily up to `maximumConnections`. A checkout waits at most
/// `checkoutTimeout` for a free connection and then fails with `.poolTimeout`. A connection that broke
/// (its server restarted, its socket closed) is noticed before it is handed out or when a statement fails
/// on it, and is replaced by a new one, so a restart of PostgreSQL costs the statements in flight at
/// that moment and nothing after.
public final class PostgresPool: Sendable {
    public struct Options: Sendable {
        /// Connections open at most at once. Default 10: PostgreSQL's own default limit is 100, shared
        /// by every replica and tool.
        public var maximumConnections = 10
        /// How long a checkout waits for a free connection. Default 10 s: longer than any statement on
        /// the hot path should take, short enough that an exhausted pool surfaces as an error.
        public var checkoutTimeout: Duration = .seconds(10)
        /// A connection older than this is closed when it comes back, and a new one opened in its place
        /// on demand: server-side memory a long session accumulates is returned, and after a failover or
        /// a configuration change every connection is fresh within this time. Default 30 minutes.
        public var maximumConnectionLifetime: Duration = .seconds(1800)

        public init(maximumConnections: Int = 10, checkoutTimeout: Duration = .seconds(10),
                    maximumConnectionLifetime: Duration = .seconds(1800)) {
            self.maximumConnections = maximumConnections
            self.checkoutTimeout = checkoutTimeout
            self.maximumConnectionLifetime = maximumConnectionLifetime
        }
    }

    /// What a checkout gets: a connection, or the right to open one.
    private enum Lease: Sendable {
        case connection(PostgresConnection)
        case newConnection
    }

    private struct Waiter {
        let id: Int
        let continuation: CheckedContinuation<Lease, any Error>
    }

    private struct State {
        var idle: [PostgresConnection] = []
        /// Open or opening connections, idle or in use.
        var open = 0
        var waiters: [Waiter] = []
        var nextWaiterID = 0
        var closed = false
    }

    public let configuration: PostgresConfiguration
    public let options: Options
    private let state = Mutex(State())

    public init(configuration: PostgresConfiguration, options: Options = Options()) {
        precondition(options.maximumConnections > 0, "a pool needs at least one connection")
        self.configuration = configuration
        self.options = options
    }

    /// Runs `body` on a pooled connection, isolated to it: statements inside are synchronous calls.
    @discardableResult
    public func withConnection<T: Sendable>(
        _ body: @Sendable (isolated PostgresConnection) throws -> T
    ) async throws -> T {
        // A connection that turns out stale is dropped and another is taken; more tries than the pool
        // has connections would mean every one of them was stale, and the new ones are fresh.
        for _ in 0...options.maximumConnections {
            let connection = try await checkout()
            let outcome: Result<T, any Error>? = try await connection.perform { connection in
                guard connection.isReadyForUse() else { return nil }
                do { return .success(try body(connection)) } catch { return .failure(error) }
            }
            release(connection)
            if let outcome { return try outcome.get() }
        }
        throw PostgresError(kind: .connection, message: "no usable connection to PostgreSQL (\(configuration))")
    }

    /// Runs `body` in a transaction on a pooled connection: committed when it returns, rolled back when
    /// it throws.
    @discardableResult
    public func transaction<T: Sendable>(
        _ body: @Sendable (isolated PostgresConnection) throws -> T
    ) async throws -> T {
        try await withConnection { connection in try connection.transaction { connection in try body(connection) } }
    }

    /// Runs one named statement on a pooled connection.
    @discardableResult
    public func query(_ statement: PostgresStatement, _ parameters: [any PostgresEncodable] = []) async throws -> PostgresRows {
        try await withConnection { connection in try connection.query(statement, parameters) }
    }

    public struct Statistics: Sendable, Equatable {
        public var open: Int
        public var idle: Int
        public var waiting: Int
    }

    public var statistics: Statistics {
        state.withLock { Statistics(open: $0.open, idle: $0.idle.count, waiting: $0.waiters.count) }
    }

    /// Closes idle connections and refuses new checkouts; connections in use close when released.
    public func close() async {
        let (idle, waiters) = state.withLock { state in
            state.closed = true
            let taken = (state.idle, state.waiters)
            state.open -= state.idle.count
            state.idle = []
            state.waiters = []
            return taken
        }
        for waiter in waiters { waiter.continuation.resume(throwing: closedError) }
        for connection in idle { await connection.close() }
    }

    // MARK: - Checkout

    private var closedError: PostgresError { PostgresError(kind: .closed, message: "the connection pool is closed") }

    private func checkout() async throws -> PostgresConnection {
        let lease: Lease = try await withCheckedThrowingContinuation { continuation in
            enum Decision { case lease(Lease), closed, wait(Int) }
            let decision: Decision = state.withLock { state in
                if state.closed { return .closed }
                if let connection = state.idle.popLast() { return .lease(.connection(connection)) }
                if state.open < options.maximumConnections {
                    state.open += 1
                    return .lease(.newConnection)
                }
                let id = state.nextWaiterID
                state.nextWaiterID += 1
                state.waiters.append(Waiter(id: id, continuation: continuation))
                return .wait(id)
            }
            switch decision {
            case .lease(let lease): continuation.resume(returning: lease)
            case .closed: continuation.resume(throwing: closedError)
            case .wait(let id):
                let timeout = options.checkoutTimeout
                Task { [weak self] in
                    try? await Task.sleep(for: timeout)
                    self?.expireWaiter(id)
                }
            }
        }
        switch lease {
        case .connection(let connection):
            return connection
        case .newConnection:
            do {
                return try await PostgresConnection.connect(configuration)
            } catch {
                releaseSlot()
                throw error
            }
        }
    }

    private func expireWaiter(_ id: Int) {
        let waiter: Waiter? = state.withLock { state in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.continuation.resume(throwing: PostgresError(
            kind: .poolTimeout,
            message: "no database connection became free within \(options.checkoutTimeout) "
                + "(all \(options.maximumConnections) in use)"))
    }

    private func release(_ connection: PostgresConnection) {
        if connection.isBroken {
            releaseSlot()
            return
        }
        if ContinuousClock.now - connection.openedAt > options.maximumConnectionLifetime {
            Task { await connection.close() }
            releaseSlot()
            return
        }
        let waiter: Waiter? = state.withLock { state in
            if state.closed {
                state.open -= 1
                return nil
            }
            if !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.idle.append(connection)
            return nil
        }
        waiter?.continuation.resume(returning: .connection(connection))
    }

    /// A connection is gone: its slot goes to the longest waiter, who opens a new one.
    private func releaseSlot() {
        let waiter: Waiter? = state.withLock { state in
            state.open -= 1
            guard !state.closed, !state.waiters.isEmpty else { return nil }
            state.open += 1
            return state.waiters.removeFirst()
        }
        waiter?.continuation.resume(returning: .newConnection)
    }
}
