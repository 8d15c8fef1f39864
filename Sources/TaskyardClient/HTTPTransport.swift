import AsyncHTTPClient
import NIOCore
import Synchronization
import TaskyardSecurity

/// The HTTP client of a Taskyard process (agents, the command line).
///
/// AsyncHTTPClient's default keeps retrying a refused connection until the request's deadline; for an
/// agent calling a dead participant that is minutes of waiting for an answer that is already known.
/// Here a refused or timed-out connection fails the request at once, and callers retry where it makes
/// sense (reports, polls), with their own backoff. Redirects are never followed: a participant or server
/// that answers 3xx has answered, and following it would send a grant or a token somewhere else.
public final class HTTPTransport: Sendable {
    public let client: HTTPClient

    /// Trusts the system's certificate authorities, or with `caFile` only the CAs in that PEM file.
    /// Private: transports live as long as the process (an HTTPClient must be shut down before it goes),
    /// one per CA file, from `trusting(caFile:)`.
    private init(caFile: String? = nil, connectionsPerHost: Int = 64) throws {
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .seconds(5)
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.decompression = .disabled
        configuration.redirectConfiguration = .disallow
        // Several agents in one process (`taskyard dev`, a program embedding NodeAgent, the tests' twenty)
        // share this client, each holding a long poll to the same server: AsyncHTTPClient's default of 8
        // connections a host queued the rest behind them.
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = connectionsPerHost
        configuration.tlsConfiguration = try TLSFiles.clientConfiguration(caFile: caFile)
        // No span per request: the agent's and server's own spans say what a request was for, and a span per
        // long poll would start a trace of its own every 20 s per node.
        configuration.tracing.tracer = nil
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// A transport of its own that holds up to `connectionsPerHost` connections to each server (a program
    /// holding that many long polls, say). Its owner shuts its `client` down once no request uses it.
    public static func dedicated(connectionsPerHost: Int) throws -> HTTPTransport {
        try HTTPTransport(connectionsPerHost: connectionsPerHost)
    }

    /// The process-wide transport with the system's trust roots.
    public static let shared: HTTPTransport = try! HTTPTransport()

    private static let byCAFile = Mutex<[String: HTTPTransport]>([:])

    /// The transport that trusts the CAs in `caFile` (nil: `shared`), made on first use.
    public static func trusting(caFile: String?) throws -> HTTPTransport {
        guard let caFile else { return shared }
        if let known = byCAFile.withLock({ $0[caFile] }) { return known }
        let made = try HTTPTransport(caFile: caFile)
        return byCAFile.withLock { cache in
            if let known = cache[caFile] {
                try? made.client.syncShutdown()
                return known
            }
            cache[caFile] = made
            return made
        }
    }
}
