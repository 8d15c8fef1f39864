import NIOCore
import Synchronization

/// The open connections of one listener, and a cap on them: a flood of idle connections cannot take every
/// file descriptor the process has.
public final class OpenConnections: Sendable {
    public let limit: Int
    private let open = Atomic(0)

    public init(limit: Int) { self.limit = limit }

    public var count: Int { open.load(ordering: .relaxed) }

    /// Counts a new connection; false when it is past the limit (the caller closes it; it stays counted
    /// until its handler is removed).
    public func opened() -> Bool { open.add(1, ordering: .relaxed).newValue <= limit }

    public func closed() { open.subtract(1, ordering: .relaxed) }
}

/// Counts the connections of the pipelines it is added to, and closes each one past the limit as it
/// arrives.
public final class ConnectionLimiter: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    // Reads pass through untouched (never unwrapped), so their type does not matter here.
    public typealias InboundIn = Any

    private let connections: OpenConnections
    private let counted = Atomic(false)

    public init(connections: OpenConnections) { self.connections = connections }

    public func handlerAdded(context: ChannelHandlerContext) {
        counted.store(true, ordering: .relaxed)
        if !connections.opened() { context.close(promise: nil) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        if counted.exchange(false, ordering: .relaxed) { connections.closed() }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }
}
