import Hummingbird
import HummingbirdCore
import NIOCore
import Synchronization

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

    /// Open connections of one server, shared by the watchers of its connections.
    final class Connections: Sendable {
        let maximum: Int
        fileprivate let open = Atomic(0)
        init(maximum: Int) { self.maximum = maximum }
    }

    private let gone = Atomic(false)
    private let counted = Atomic(false)
    private let connections: Connections

    init(connections: Connections) {
        self.connections = connections
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let open = connections.open.add(1, ordering: .relaxed).newValue
        counted.store(true, ordering: .relaxed)
        if open > connections.maximum { context.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if counted.exchange(false, ordering: .relaxed) { connections.open.subtract(1, ordering: .relaxed) }
    }

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
