import Foundation
import Synchronization

/// A dedicated connection that LISTENs and delivers notifications as an `AsyncStream`.
///
/// If the connection breaks it reconnects (after `reconnectDelay`) and LISTENs again to every channel.
/// Notifications sent while it was disconnected are lost, as PostgreSQL does not queue them for absent
/// listeners: consumers that must not miss work re-check the database from time to time.
public final class PostgresListener: Sendable {
    public let notifications: AsyncStream<PostgresNotification>
    private let continuation: AsyncStream<PostgresNotification>.Continuation
    private let configuration: PostgresConfiguration
    private let reconnectDelay: Duration

    private struct State {
        var channels: Set<String> = []
        var connection: PostgresConnection?
        var closed = false
        var loop: Task<Void, Never>?
    }

    private let state = Mutex(State())
    /// How long one wait on the socket lasts before the loop looks at `closed` again.
    private static let pollMilliseconds: Int32 = 200
    /// A listening connection only reads, so a peer that vanished without a word (a half-open TCP
    /// connection, a failed-over server) would go unnoticed: it asks the server something this often,
    /// and reconnects when the answer does not come.
    private static let pingInterval: Duration = .seconds(15)

    /// Connects, LISTENs to `channels`, and starts delivering.
    public static func start(configuration: PostgresConfiguration, channels: [String] = [],
                             reconnectDelay: Duration = .seconds(1)) async throws -> PostgresListener {
        let listener = PostgresListener(configuration: configuration, reconnectDelay: reconnectDelay)
        listener.state.withLock { $0.channels = Set(channels) }
        let connection = try await listener.connectAndListen()
        let loop = Task { await listener.run(firstConnection: connection) }
        listener.state.withLock { $0.loop = loop }
        return listener
    }

    private init(configuration: PostgresConfiguration, reconnectDelay: Duration) {
        self.configuration = configuration
        self.reconnectDelay = reconnectDelay
        (notifications, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(100_000))
    }

    /// LISTENs to one more channel; notifications on it are delivered once this returns.
    public func listen(_ channel: String) async throws {
        let connection = state.withLock { state in
            state.channels.insert(channel)
            return state.connection
        }
        try await connection?.perform { connection in
            try connection.execute("LISTEN \(try connection.quoteIdentifier(channel))")
        }
    }

    /// Stops listening and ends the stream.
    public func close() async {
        let (connection, loop) = state.withLock { state in
            state.closed = true
            return (state.connection, state.loop)
        }
        await loop?.value
        await connection?.close()
        continuation.finish()
    }

    private var isClosed: Bool { state.withLock { $0.closed } }

    private func connectAndListen() async throws -> PostgresConnection {
        let connection = try await PostgresConnection.connect(configuration)
        let channels = state.withLock { state in
            state.connection = connection
            return state.channels
        }
        try await connection.perform { connection in
            for channel in channels.sorted() {
                try connection.execute("LISTEN \(try connection.quoteIdentifier(channel))")
            }
        }
        return connection
    }

    private func run(firstConnection: PostgresConnection) async {
        var connection: PostgresConnection? = firstConnection
        var lastPing = ContinuousClock.now
        while !isClosed {
            do {
                if connection == nil {
                    connection = try await connectAndListen()
                    lastPing = .now
                }
                if ContinuousClock.now - lastPing >= Self.pingInterval {
                    try await connection!.perform { connection in _ = try connection.query("SELECT 1 AS alive") }
                    lastPing = .now
                }
                let batch = try await connection!.waitForNotifications(timeoutMilliseconds: Self.pollMilliseconds)
                for notification in batch { continuation.yield(notification) }
            } catch {
                connection = nil
                state.withLock { $0.connection = nil }
                if isClosed { break }
                try? await Task.sleep(for: reconnectDelay)
            }
        }
    }
}
