import ArgumentParser
import Foundation
import Synchronization
import Logging
import ServiceLifecycle
import TaskyardClient
import TaskyardSecurity

/// `--server`, the token and the CA for every command that talks to the API.
public struct ServerOptions: ParsableArguments {
    public init() {}

    @Option(help: ArgumentHelp("The Taskyard server; replicas of one deployment separated by commas are used in turn, the next when one cannot answer. Default: $TASKYARD_SERVER, else http://127.0.0.1:8080.", valueName: "url[,url…]"))
    public var server: String?

    @OptionGroup public var credentials: TokenOptions

    @Option(help: ArgumentHelp("PEM file of the certificate authorities to trust for https:// (the server's, and for agents other agents'). Default: the system's.", valueName: "path"))
    public var caFile: String?

    public var url: String {
        setting(server, "TASKYARD_SERVER", default: "http://127.0.0.1:8080")!
    }

    /// A client of the server with the token (when one is given) and the trusted CAs. The dev folder's
    /// admin token is sent only to a server on loopback: it is that machine's `taskyard dev`, and a URL
    /// pointing elsewhere must not receive it.
    public func client() throws -> TaskyardClient {
        let transport = try HTTPTransport.trusting(caFile: caFile)
        let devToken = url.split(separator: ",").allSatisfy { Self.isLoopback(String($0)) } ? ".taskyard/admin-token" : nil
        return TaskyardClient(baseURL: url, token: try credentials.token(fallbackFile: devToken), transport: transport)
    }

    static func isLoopback(_ url: String) -> Bool {
        URLComponents(string: url)?.host.map(isLoopbackHost) ?? false
    }
}

/// Where a command finds its token: `--token`, else `--token-file`, else `$TASKYARD_TOKEN`, else (for
/// the command line in a `taskyard dev` folder) `.taskyard/admin-token`.
public struct TokenOptions: ParsableArguments {
    public init() {}

    @Option(help: ArgumentHelp("Bearer token. Prefer --token-file or $TASKYARD_TOKEN: a flag shows in the process list.", valueName: "token"))
    public var token: String?

    @Option(help: ArgumentHelp("File holding the bearer token. Default: $TASKYARD_TOKEN, else .taskyard/admin-token when it exists and the server is on loopback.", valueName: "path"))
    public var tokenFile: String?

    /// The token, or nil when none is given anywhere.
    public func token(fallbackFile: String? = ".taskyard/admin-token") throws -> String? {
        if let token, !token.isEmpty { return token }
        if let tokenFile { return try Self.read(tokenFile) }
        if let value = setting(nil, "TASKYARD_TOKEN") { return value }
        if let fallbackFile, FileManager.default.fileExists(atPath: fallbackFile) { return try Self.read(fallbackFile) }
        return nil
    }

    private static func read(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read the token file \(path)")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw ValidationError("the token file \(path) is empty") }
        return token
    }
}

/// `--tls-cert-file` and `--tls-key-file` for a listener.
public struct TLSOptions: ParsableArguments {
    public init() {}

    @Option(help: ArgumentHelp("PEM certificate chain to serve HTTPS with (with --tls-key-file). Default: plain HTTP.", valueName: "path"))
    public var tlsCertFile: String?

    @Option(help: ArgumentHelp("PEM private key of --tls-cert-file.", valueName: "path"))
    public var tlsKeyFile: String?

    @Flag(name: .customLong("allow-plain-http"),
          help: "Serve plain HTTP on an address other than loopback: tokens and grants then cross the network readable. Refused without this flag (and logged as a warning with it).")
    public var allowPlainHTTP = false

    public func files() throws -> TLSFiles? {
        do {
            return try TLSFiles.from(certificateFile: tlsCertFile, keyFile: tlsKeyFile)
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// The TLS files for a listener on `address`. Plain HTTP off loopback is refused unless
    /// --allow-plain-http; then the returned warning is to be logged at start.
    public func files(listeningOn address: ListenAddress) throws -> (files: TLSFiles?, warning: String?) {
        let files = try files()
        guard files == nil, !address.isLoopback else { return (files, nil) }
        let exposed = "plain HTTP on \(address.host):\(address.port), an address other than loopback: tokens and grants cross the network readable"
        guard allowPlainHTTP else {
            throw ValidationError("refusing to serve \(exposed). Serve HTTPS (--tls-cert-file and --tls-key-file), listen on 127.0.0.1, or pass --allow-plain-http on a network you trust")
        }
        return (nil, "serving " + exposed + " (--allow-plain-http)")
    }
}

/// `--cluster` for commands on one cluster's tasks and nodes.
public struct ClusterOption: ParsableArguments {
    public init() {}

    @Option(name: [.customShort("c"), .long],
            help: ArgumentHelp("Cluster id. Default: $TASKYARD_CLUSTER, else dev.", valueName: "id"))
    public var cluster: String?

    public var id: String {
        setting(cluster, "TASKYARD_CLUSTER", default: "dev")!
    }
}

public struct LoggingOptions: ParsableArguments {
    public init() {}

    @Option(help: ArgumentHelp("trace, debug, info, notice, warning, error or critical. Default: $LOG_LEVEL, else info.",
                               valueName: "level"))
    public var logLevel: String?

    @Option(help: ArgumentHelp("text (lines for a person) or json (one JSON object a line: time, level, logger, message and the entry's ids, for a log pipeline). Default: $LOG_FORMAT, else text.",
                               valueName: "format"))
    public var logFormat: String?

    public func makeLogger(_ label: String) throws -> Logger {
        let text = setting(logLevel, "LOG_LEVEL", default: "info")!
        guard let level = Logger.Level(rawValue: text) else {
            throw ValidationError("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let format = setting(logFormat, "LOG_FORMAT", default: "text")!
        guard let json = ["text": false, "json": true][format] else { throw ValidationError("--log-format must be text or json") }
        LoggingBootstrap.once(json: json)
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}

/// The process's log handler, chosen by the first command line that makes a logger.
enum LoggingBootstrap {
    private static let done = Mutex(false)

    static func once(json: Bool) {
        let first = done.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        LoggingSystem.bootstrap(json ? { JSONLogHandler(label: $0) } : StreamLogHandler.standardError)
    }
}

/// Runs services until SIGINT or SIGTERM, then shuts them down gracefully, in reverse order.
public func runUntilSignalled(_ services: [any Service], logger: Logger) async throws {
    let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    try await group.run()
}

/// `host:port`, as given to --listen.
public struct ListenAddress: Sendable {
    public let host: String
    public let port: Int

    public init(_ text: String, option: String) throws {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port), colon != text.startIndex
        else { throw ValidationError("\(option) must be host:port, e.g. 127.0.0.1:8080 (got \(text))") }
        host = String(text[..<colon])
        self.port = port
    }

    /// Whether only this machine can reach the address.
    public var isLoopback: Bool { isLoopbackHost(host) }
}

/// Whether `host` is this machine: 127.0.0.0/8, ::1 (bracketed or not), localhost.
func isLoopbackHost(_ host: String) -> Bool {
    let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    if bare == "localhost" { return true }
    var v4 = in_addr()
    if inet_pton(AF_INET, bare, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, bare, &v6) == 1 { return withUnsafeBytes(of: v6) { Array($0) } == Array(repeating: 0, count: 15) + [1] }
    // A name (127.0.0.1.example.com too) may resolve anywhere.
    return false
}

// MARK: - Settings

// Every command reads its settings one way: the flag (ArgumentParser declares it, with its help), else the
// environment variable its help names ("Default: $VARIABLE, else …"), else the default — through `setting`
// and `number` below and nowhere else. `ConfigurationTableTests` holds the README's Configuration table to
// the flags, variables and defaults the commands declare. (swift-configuration, which Hummingbird reads its
// own settings with, would add a package and its build time for what these two functions do: flags are
// ArgumentParser's already, and no setting comes from a file.)

/// The value of a flag, else an environment variable, else a default. Empty counts as unset.
public func setting(_ flag: String?, _ variable: String, default fallback: String? = nil) -> String? {
    if let flag, !flag.isEmpty { return flag }
    if let value = ProcessInfo.processInfo.environment[variable], !value.isEmpty { return value }
    return fallback
}

/// A numeric flag, else the environment variable, else nil; a malformed variable is an error.
public func number<T: LosslessStringConvertible>(_ flag: T?, _ variable: String, _ type: T.Type) throws -> T? {
    if let flag { return flag }
    guard let text = setting(nil, variable) else { return nil }
    guard let value = T(text) else { throw ValidationError("$\(variable) must be a number (got \(text))") }
    return value
}

/// A flag given in seconds, checked and made a Duration: finite, above zero (or zero where `allowZero`), at most
/// `limit` (a week by default). An infinite lease or a timeout of 1e16 s is no setting anyone means (and the
/// latter overflowed the conversion to a Duration and crashed the agent).
public func checkedDuration(_ value: Double, _ option: String, allowZero: Bool = false, atMost limit: Double = 604_800) throws -> Duration {
    guard value.isFinite, allowZero ? value >= 0 : value > 0, value <= limit else {
        throw ValidationError("\(option) takes seconds, \(allowZero ? "0" : "more than 0") to \(Int(limit)) (got \(value))")
    }
    return .seconds(value)
}

/// `30d`, `12h`, `90m`, `45s` or a number of seconds.
public func parseDuration(_ text: String, option: String) throws -> Duration {
    let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]
    var number = text
    var scale = 1.0
    if let last = text.last, let unit = units[last] {
        number = String(text.dropLast())
        scale = unit
    }
    guard let value = Double(number), value >= 0, value.isFinite else {
        throw ValidationError("\(option) takes a duration such as 7d, 12h, 30m or 45s (got \(text))")
    }
    return .seconds(value * scale)
}
