import Foundation

/// Where a node's participant endpoint listens: `http(s)://host:port` and nothing else. Registration
/// refuses anything more (a path, a query, user info), so a registered endpoint can never turn a fan-out
/// into a request to some other URL; agents build each participant URL from these parts.
public struct NodeEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var scheme: String
    public var host: String
    public var port: Int

    public init(scheme: String, host: String, port: Int) {
        self.scheme = scheme
        self.host = host
        self.port = port
    }

    public init(parsing text: String, field: String = "endpoint") throws(TaskyardError) {
        let rule = "must be http://host:port or https://host:port, with nothing after the port"
        guard text.utf8.count <= 300, !text.contains(where: { $0.isWhitespace || $0 == "\\" }),
              let components = URLComponents(string: text),
              let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = components.host, !host.isEmpty,
              let port = components.port, (1...65535).contains(port),
              components.user == nil, components.password == nil,
              components.path.isEmpty, components.query == nil, components.fragment == nil,
              // URLComponents accepts "http://h:1?" with an empty query as no query; the text must not.
              !text.contains("?"), !text.contains("#"), !text.contains("@")
        else { throw .invalid(field, "\(rule) (got \(String(reflecting: String(text.prefix(100)))))") }
        self.scheme = scheme
        self.host = host
        self.port = port
    }

    /// The URL of `path` (segments that are task types, ids and fixed words: no escaping needed, and
    /// nothing of the endpoint but its scheme, host and port is used).
    public func url(_ path: [String]) -> String {
        let hostPart = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return "\(scheme)://\(hostPart):\(port)/" + path.joined(separator: "/")
    }

    public var description: String { url([]).trimmingCharacters(in: CharacterSet(charactersIn: "/")) }
}
