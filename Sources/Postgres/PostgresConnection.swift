import CLibPQ
import Foundation
import Synchronization

/// One connection to PostgreSQL.
///
/// An actor running on a thread of its own (see `ThreadExecutor`): every libpq call blocks that thread
/// only. Code that has the connection isolated (inside `perform`, `transaction` or a pool closure) calls
/// `query` synchronously, so a multi-statement transaction costs no thread hops between statements.
public actor PostgresConnection {
    private let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private var handle: OpaquePointer?
    private var preparedStatements: Set<String> = []
    private let broken = Atomic<Bool>(false)
    public nonisolated let configuration: PostgresConfiguration
    /// When the connection was opened (a pool retires old ones).
    public nonisolated let openedAt = ContinuousClock.now

    /// True once the connection failed or was closed; a pool replaces such a connection.
    public nonisolated var isBroken: Bool { broken.load(ordering: .acquiring) }

    private init(configuration: PostgresConfiguration) {
        self.configuration = configuration
        executor = ThreadExecutor(name: "postgres-connection")
    }

    isolated deinit {
        if let handle { PQfinish(handle) }
        executor.stop()
    }

    /// Connects and sets the session up (UTC, ISO dates), or throws a `.connection` error.
    public static func connect(_ configuration: PostgresConfiguration) async throws(PostgresError) -> PostgresConnection {
        let connection = PostgresConnection(configuration: configuration)
        try await connection.open()
        return connection
    }

    private func open() throws(PostgresError) {
        let pairs = configuration.keywordsAndValues
        let keywords = pairs.map { strdup($0.0) }
        let values = pairs.map { strdup($0.1) }
        defer { (keywords + values).forEach { free($0) } }
        let keywordPointers = keywords.map { UnsafePointer($0) } + [nil]
        let valuePointers = values.map { UnsafePointer($0) } + [nil]
        let connection = PQconnectdbParams(keywordPointers, valuePointers, 0)
        guard let connection, PQstatus(connection) == CONNECTION_OK else {
            let message = connection.map { String(cString: PQerrorMessage($0)).trimmingTrailingNewlines } ?? "out of memory"
            if let connection { PQfinish(connection) }
            broken.store(true, ordering: .releasing)
            throw PostgresError(kind: .connection,
                                message: "cannot connect to PostgreSQL (\(configuration)): \(message)")
        }
        handle = connection
        // libpq prints server notices to stderr by default; a library must not write to its host's
        // stderr. Errors still arrive as thrown PostgresErrors.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        // Timestamps are parsed and written as UTC ISO text; this makes the server agree.
        try execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3")
        for (name, value) in configuration.sessionSettings.sorted(by: { $0.key < $1.key }) {
            try query("SELECT set_config($1, $2, false)", [name, value])
        }
    }

    /// Closes the connection; later calls throw `.closed`.
    public func close() {
        if let handle { PQfinish(handle) }
        handle = nil
        broken.store(true, ordering: .releasing)
    }

    /// Runs `body` with the connection isolated: queries inside are plain synchronous calls.
    public func perform<T: Sendable>(_ body: @Sendable (isolated PostgresConnection) throws -> T) throws -> T {
        try body(self)
    }

    // MARK: - Statements

    /// Runs a named statement, preparing it on this connection the first time.
    @discardableResult
    public func query(_ statement: PostgresStatement, _ parameters: [any PostgresEncodable] = []) throws(PostgresError) -> PostgresRows {
        let connection = try liveHandle()
        try prepare(statement)
        return try retryingConflicts { () throws(PostgresError) in
            let result = try withParameters(parameters) { values throws(PostgresError) in
                PQexecPrepared(connection, statement.name, Int32(values.count), values, nil, nil, 0)
            }
            return try check(result, statement: statement.name)
        }
    }

    /// Runs a statement (or a transaction of its own) again when it lost a deadlock or a serialization
    /// conflict, up to three times, but only when started outside a transaction: alone, what failed did
    /// nothing, while inside a transaction everything before it is gone too and only the caller can redo it.
    private func retryingConflicts(_ run: () throws(PostgresError) -> PostgresRows) throws(PostgresError) -> PostgresRows {
        let autocommit = handle.map { PQtransactionStatus($0) == PQTRANS_IDLE } ?? false
        var tries = 0
        while true {
            do {
                return try run()
            } catch where autocommit && error.isRetryable && tries < 3 {
                tries += 1
                // A few milliseconds, jittered, so the transactions that collided do not collide again.
                usleep(UInt32.random(in: 1_000...(5_000 * UInt32(tries))))
            }
        }
    }

    /// Runs a named statement in a transaction of its own under `settings` (`SET LOCAL`: planner settings
    /// gone at its end), retried whole on a lost conflict as a lone statement is.
    @discardableResult
    public func query(_ statement: PostgresStatement, _ parameters: [any PostgresEncodable] = [],
                      settings: [String]) throws(PostgresError) -> PostgresRows {
        try retryingConflicts { () throws(PostgresError) -> PostgresRows in
            do {
                return try transaction(settings: settings) { connection in try connection.query(statement, parameters) }
            } catch let error as PostgresError {
                throw error
            } catch {
                // The body throws only PostgresError; `transaction` is untyped for its other callers.
                throw PostgresError(kind: .server, message: "\(error)")
            }
        }
    }

    /// Prepares a named statement on this connection unless it already is: the server parses and
    /// checks it against the schema now.
    public func prepare(_ statement: PostgresStatement) throws(PostgresError) {
        guard !preparedStatements.contains(statement.name) else { return }
        let connection = try liveHandle()
        _ = try check(PQprepare(connection, statement.name, statement.sql, 0, nil), statement: statement.name)
        preparedStatements.insert(statement.name)
    }

    /// Runs one statement once, without preparing it (`PQexecParams`). Values go in `parameters`.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresEncodable] = []) throws(PostgresError) -> PostgresRows {
        let connection = try liveHandle()
        return try retryingConflicts { () throws(PostgresError) in
            let result = try withParameters(parameters) { values throws(PostgresError) in
                PQexecParams(connection, sql, Int32(values.count), nil, values, nil, nil, 0)
            }
            return try check(result, statement: sql)
        }
    }

    /// Runs SQL that takes no values, possibly several statements (the simple query protocol):
    /// transaction control and migration files. Never build `sql` from input.
    public func execute(_ sql: String) throws(PostgresError) {
        let connection = try liveHandle()
        _ = try check(PQexec(connection, sql), statement: sql)
    }

    /// Bulk load with `COPY … FROM STDIN` (text format): `sql` is the COPY statement, and `nextChunk` gives
    /// the data, rows of tab-separated columns each ending in a newline, a chunk at a time, until it
    /// returns nil. Returns the number of rows loaded. Never build `sql` from input.
    @discardableResult
    public func copyIn(_ sql: String, nextChunk: () throws -> String?) throws -> Int {
        let connection = try liveHandle()
        let start = PQexec(connection, sql)
        guard let start, PQresultStatus(start) == PGRES_COPY_IN else {
            _ = try check(start, statement: sql)
            throw PostgresError(kind: .server, message: "\(sql) did not start a COPY FROM STDIN", statement: sql)
        }
        PQclear(start)
        var failure: (any Error)?
        do {
            while let chunk = try nextChunk() {
                var chunk = chunk
                let sent = chunk.withUTF8 { bytes in
                    bytes.withMemoryRebound(to: CChar.self) { PQputCopyData(connection, $0.baseAddress, Int32($0.count)) }
                }
                if sent != 1 { throw connectionFailure(connection, statement: sql) }
            }
        } catch {
            failure = error
        }
        if PQputCopyEnd(connection, failure == nil ? nil : "the data source failed") != 1 {
            throw connectionFailure(connection, statement: sql)
        }
        var loaded = 0
        var serverError: (any Error)?
        while let result = PQgetResult(connection) {
            do { loaded = try check(result, statement: sql).affectedRows } catch { serverError = error }
        }
        if let failure { throw failure }
        if let serverError { throw serverError }
        return loaded
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    public func transaction<T>(_ body: (isolated PostgresConnection) throws -> T) throws -> T {
        try transaction(settings: [], body)
    }

    /// The same, under `settings` (`SET LOCAL`, constant text of the program, never input), sent with the
    /// `BEGIN` in one round trip.
    public func transaction<T>(settings: [String], _ body: (isolated PostgresConnection) throws -> T) throws -> T {
        try execute((["BEGIN"] + settings.map { "SET LOCAL \($0)" }).joined(separator: "; "))
        let value: T
        do {
            value = try body(self)
        } catch {
            if !isBroken { try? execute("ROLLBACK") }
            throw error
        }
        try execute("COMMIT")
        return value
    }

    /// Quotes an identifier with libpq's own rules, for the few statements that cannot take it as a
    /// parameter (LISTEN, CREATE DATABASE).
    public func quoteIdentifier(_ identifier: String) throws(PostgresError) -> String {
        let connection = try liveHandle()
        guard let quoted = PQescapeIdentifier(connection, identifier, identifier.utf8.count) else {
            throw PostgresError(kind: .server, message: String(cString: PQerrorMessage(connection)).trimmingTrailingNewlines)
        }
        defer { PQfreemem(quoted) }
        return String(cString: quoted)
    }

    // MARK: - Health

    /// Cheap check before a pool hands the connection out: no open transaction, and nothing arrived
    /// on the socket while idle. A server that restarted or ended the session has sent an error and
    /// closed the socket; reading that now marks the connection broken instead of failing the next query.
    /// A connection that fails the check is marked broken, so that its pool drops it.
    public func isReadyForUse() -> Bool {
        guard let connection = handle, PQstatus(connection) == CONNECTION_OK,
              PQtransactionStatus(connection) == PQTRANS_IDLE
        else {
            // Closed, failed, or left inside a transaction by its last user: not safe to hand out.
            markBroken()
            return false
        }
        // A server ending the session sends an error (which libpq files as a notice while idle) and then
        // closes the socket; the close is seen only by a further read. Read until nothing is pending.
        var descriptor = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
        for _ in 0..<8 where poll(&descriptor, 1, 0) > 0 {
            if PQconsumeInput(connection) == 0 || PQstatus(connection) != CONNECTION_OK {
                markBroken()
                return false
            }
            while let notification = PQnotifies(connection) { PQfreemem(notification) }
        }
        return true
    }

    // MARK: - Notifications

    /// Waits up to `timeoutMilliseconds` for notifications on the channels this connection LISTENs to.
    func waitForNotifications(timeoutMilliseconds: Int32) throws(PostgresError) -> [PostgresNotification] {
        let connection = try liveHandle()
        var received = drainNotifications(connection)
        if !received.isEmpty { return received }
        var descriptor = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
        if poll(&descriptor, 1, timeoutMilliseconds) > 0 {
            if PQconsumeInput(connection) == 0 {
                throw connectionFailure(connection, statement: nil)
            }
            received = drainNotifications(connection)
        }
        return received
    }

    private func drainNotifications(_ connection: OpaquePointer) -> [PostgresNotification] {
        var received: [PostgresNotification] = []
        while let notification = PQnotifies(connection) {
            received.append(PostgresNotification(channel: String(cString: notification.pointee.relname),
                                                 payload: String(cString: notification.pointee.extra),
                                                 senderProcessID: notification.pointee.be_pid))
            PQfreemem(notification)
        }
        return received
    }

    // MARK: - Internals

    private func liveHandle() throws(PostgresError) -> OpaquePointer {
        guard let handle else { throw PostgresError(kind: .closed, message: "the connection is closed") }
        return handle
    }

    private func markBroken() {
        broken.store(true, ordering: .releasing)
    }

    private func withParameters<R>(_ parameters: [any PostgresEncodable],
                                   _ body: ([UnsafePointer<CChar>?]) throws(PostgresError) -> R) throws(PostgresError) -> R {
        var copies: [UnsafeMutablePointer<CChar>?] = []
        copies.reserveCapacity(parameters.count)
        defer { copies.forEach { free($0) } }
        for (index, parameter) in parameters.enumerated() {
            guard let text = parameter.postgresText else {
                copies.append(nil)
                continue
            }
            if text.utf8.contains(0) {
                throw PostgresError(kind: .server, message: "parameter $\(index + 1) contains a NUL character, which PostgreSQL text cannot hold",
                                    sqlState: "22021")
            }
            copies.append(strdup(text))
        }
        return try body(copies.map { $0.map { UnsafePointer($0) } })
    }

    private func check(_ result: OpaquePointer?, statement: String) throws(PostgresError) -> PostgresRows {
        let connection = handle!
        guard let result else { throw connectionFailure(connection, statement: statement) }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return PostgresRows(taking: result)
        default:
            func field(_ code: Character) -> String? {
                PQresultErrorField(result, Int32(code.asciiValue!)).map { String(cString: $0) }
            }
            let lostConnection = PQstatus(connection) != CONNECTION_OK
            let error = PostgresError(
                kind: lostConnection ? .connection : .server,
                message: field("M") ?? String(cString: PQresultErrorMessage(result)).trimmingTrailingNewlines,
                sqlState: field("C"), detail: field("D"), hint: field("H"), constraint: field("n"),
                statement: statement)
            PQclear(result)
            if lostConnection || error.invalidatesConnection { markBroken() }
            throw error
        }
    }

    private func connectionFailure(_ connection: OpaquePointer, statement: String?) -> PostgresError {
        markBroken()
        return PostgresError(kind: .connection,
                             message: String(cString: PQerrorMessage(connection)).trimmingTrailingNewlines,
                             statement: statement)
    }
}

/// A notification delivered to a LISTENing connection.
public struct PostgresNotification: Sendable, Hashable {
    public let channel: String
    public let payload: String
    /// The backend process that sent it.
    public let senderProcessID: Int32
}
