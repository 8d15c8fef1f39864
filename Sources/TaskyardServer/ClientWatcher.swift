import Hummingbird
import HummingbirdCore
import NIOCore
import Synchronization
import TaskyardSecurity

/// Notices, per connection, that the client has gone: it closed its side (a client timeout, `kill -9`, a
/// dropped network usually end in a FIN) or the connection closed. Hummingbird keeps half-closed
/// connections open, so without this a handler waiting for work (a long poll) cannot tell that nobody is
/// left to receive its answer.
///
/// It also keeps the server's count of open connections, and closes a new one past the cap at once: a
/// flood of idle connections cannot take every file descriptor the server has.
final class ClientWatcher: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    // Reads pass through untouched (never unwrapped), so their type does not matter here.
    typealias InboundIn = Any

    /// Open connections of one server, shared by the watchers of its connections: `maximum` for anyone,
    /// and `nodeReserve` more that only agents' requests (node tokens) may use — while more than `maximum`
    /// are open, other requests but the open routes get 503, so that clients holding every connection
    /// cannot stop the agents' polls and reports.
    final class Connections: Sendable {
        let maximum: Int
        fileprivate let open: OpenConnections

        init(maximum: Int, nodeReserve: Int) {
            self.maximum = maximum
            open = OpenConnections(limit: maximum + nodeReserve)
        }

        /// More connections are open than clients may have: only agents are served.
        var overClientShare: Bool { open.count > maximum }
    }

    private let gone = Atomic(false)
    private let limiter: ConnectionLimiter

    init(connections: Connections) {
        limiter = ConnectionLimiter(connections: connections.open)
    }

    func handlerAdded(context: ChannelHandlerContext) { limiter.handlerAdded(context: context) }

    func handlerRemoved(context: ChannelHandlerContext) { limiter.handlerRemoved(context: context) }

    var clientIsGone: Bool { gone.load(ordering: .relaxed) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed? = event as? ChannelEvent { gone.store(true, ordering: .relaxed) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        gone.store(true, ordering: .relaxed)
        context.fireChannelInactive()
    }
}

/// The server's request context: Hummingbird's, plus the connection, so that a long wait can ask whether
/// its client is still there.
struct TaskyardRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// The connection's watcher, when the pipeline has one.
    func clientWatcher() async -> ClientWatcher? {
        try? await channel.pipeline.handler(type: ClientWatcher.self).get()
    }
}
