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

    /// The whole rule as a regular expression (also the OpenAPI document's pattern): a scheme, a DNS name,
    /// IPv4 address or bracketed IPv6 address (the eight-group forms, `::` included; no zone, no embedded
    /// IPv4), and a port from 1 to 65535 without leading zeros.
    public static let patternText = #"https?://([A-Za-z0-9.-]+|\[(([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,7}:|([0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,5}(:[0-9A-Fa-f]{1,4}){1,2}|([0-9A-Fa-f]{1,4}:){1,4}(:[0-9A-Fa-f]{1,4}){1,3}|([0-9A-Fa-f]{1,4}:){1,3}(:[0-9A-Fa-f]{1,4}){1,4}|([0-9A-Fa-f]{1,4}:){1,2}(:[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(:[0-9A-Fa-f]{1,4}){1,6}|:((:[0-9A-Fa-f]{1,4}){1,7}|:))\]):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"#
    nonisolated(unsafe) static let pattern = try! Regex(patternText)

    public init(parsing text: String, field: String = "endpoint") throws(TaskyardError) {
        let rule = "must be http://host:port or https://host:port, with nothing after the port"
        guard text.utf8.count <= 300, text.wholeMatch(of: Self.pattern) != nil,
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
