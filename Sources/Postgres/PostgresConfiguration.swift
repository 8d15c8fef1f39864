import CLibPQ

/// Where and how to connect: a `postgres://` URL or a libpq keyword string (`host=… dbname=…`),
/// checked by libpq's own parser so that both forms mean exactly what they mean to `psql`.
public struct PostgresConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// The parsed keyword/value pairs that were set, as libpq understood them.
    public private(set) var parameters: [String: String]

    /// Sent to the server on every connection, visible in `pg_stat_activity`.
    public var applicationName = "taskyard"
    /// Seconds libpq waits for a connection before giving up (libpq's default is forever).
    public var connectTimeoutSeconds = 10
    /// Server settings made on every new connection (`set_config(name, value, false)`), such as
    /// `statement_timeout`: the bounds a server puts on its waits.
    public var sessionSettings: [String: String] = [:]

    public init(_ connectionString: String) throws(PostgresError) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(connectionString, &errorMessage) else {
            let message = errorMessage.map { String(cString: $0) } ?? "unparseable connection string"
            if let errorMessage { PQfreemem(errorMessage) }
            throw PostgresError(kind: .configuration, message: message.trimmingTrailingNewlines)
        }
        defer { PQconninfoFree(options) }
        var parameters: [String: String] = [:]
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { parameters[String(cString: keyword)] = String(cString: value) }
            option += 1
        }
        self.parameters = parameters
    }

    public init(parameters: [String: String]) {
        self.parameters = parameters
    }

    /// A copy that connects to another database on the same server.
    public func withDatabase(_ name: String) -> PostgresConfiguration {
        var copy = self
        copy.parameters["dbname"] = name
        return copy
    }

    public var database: String? { parameters["dbname"] }
    public var host: String? { parameters["host"] }
    public var port: String? { parameters["port"] }
    public var user: String? { parameters["user"] }

    /// The keyword/value pairs handed to `PQconnectdbParams`; the user's own values win.
    var keywordsAndValues: [(String, String)] {
        // TCP keepalives: a connection whose peer vanished (a half-open LISTEN connection, a server that
        // failed over) is noticed in about a minute, not after the kernel's two hours.
        var pairs = [("application_name", applicationName), ("connect_timeout", String(connectTimeoutSeconds)),
                     ("keepalives", "1"), ("keepalives_idle", "30"), ("keepalives_interval", "10"), ("keepalives_count", "3")]
        for (key, value) in parameters.sorted(by: { $0.key < $1.key }) {
            pairs.removeAll { $0.0 == key }
            pairs.append((key, value))
        }
        return pairs
    }

    /// Keywords and values as one libpq connection string (`host=… port=…`), password included: what a child
    /// process given this database takes as its `--database-url`.
    public var connectionString: String {
        parameters.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    /// Keywords and values with the password hidden, for logs and error messages.
    public var description: String {
        parameters.sorted(by: { $0.key < $1.key })
            .map { "\($0.key)=\($0.key == "password" ? "***" : $0.value)" }
            .joined(separator: " ")
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var result = self
        while result.last?.isNewline == true { result.removeLast() }
        return result
    }
}
