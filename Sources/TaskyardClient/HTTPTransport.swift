import AsyncHTTPClient
import NIOCore

/// The one HTTP client of a Taskyard process (agents, the command line).
///
/// AsyncHTTPClient's default keeps retrying a refused connection until the request's deadline; for an
/// agent calling a dead participant that is minutes of waiting for an answer that is already known.
/// Here a refused or timed-out connection fails the request at once, and callers retry where it makes
/// sense (reports, polls), with their own backoff.
public enum HTTPTransport {
    public static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .seconds(5)
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()
}
