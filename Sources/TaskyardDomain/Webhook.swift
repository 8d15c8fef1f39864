import Foundation

/// A subscription to a cluster's task transitions, delivered as signed HTTP POSTs (`POST …/webhooks`).
public struct Webhook: Sendable, Hashable {
    public var clusterID: String
    public var id: Int64
    public var url: WebhookURL
    /// The transitions delivered, as `task.<state>` names (`WebhookEvent`).
    public var events: [String]
    /// Only tasks of these types; nil: every type.
    public var types: [String]?
    public var createdAt: Date

    public init(clusterID: String, id: Int64, url: WebhookURL, events: [String], types: [String]?, createdAt: Date) {
        self.clusterID = clusterID
        self.id = id
        self.url = url
        self.events = events
        self.types = types
        self.createdAt = createdAt
    }

    /// The states whose transitions it delivers.
    public var states: [TaskState] { events.compactMap(WebhookEvent.state(of:)) }
}

/// What a request says a subscription is, checked.
public struct WebhookDefinition: Sendable {
    public var url: WebhookURL
    public var events: [String]
    public var types: [String]?

    /// At most this many events and types (each list is a filter, not a payload).
    public static let maximumListLength = 64

    public init(url: String, events: [String], types: [String]?) throws(TaskyardError) {
        self.url = try WebhookURL(parsing: url)
        guard !events.isEmpty else { throw .invalid("events", "must name at least one event (\(WebhookEvent.all.joined(separator: ", ")))") }
        guard events.count <= Self.maximumListLength else { throw .invalid("events", "must name at most \(Self.maximumListLength) events") }
        for (index, event) in events.enumerated() where WebhookEvent.state(of: event) == nil {
            throw .invalid("events[\(index)]", "must be one of \(WebhookEvent.all.joined(separator: ", ")) (got \(quoted(event)))")
        }
        if let types {
            guard !types.isEmpty else { throw .invalid("types", "must name at least one task type, or be left out for every type") }
            guard types.count <= Self.maximumListLength else { throw .invalid("types", "must name at most \(Self.maximumListLength) types") }
            for (index, type) in types.enumerated() { try Identifier.validateTaskType(type, field: "types[\(index)]") }
        }
        self.events = Self.distinct(events)
        self.types = types.map(Self.distinct)
    }

    private static func distinct(_ values: [String]) -> [String] {
        var seen = Set<String>()
        return values.filter { seen.insert($0).inserted }
    }
}

/// The event names of webhook deliveries: `task.` and the state a transition entered.
public enum WebhookEvent {
    public static let all = TaskState.allCases.map { "task.\($0.rawValue)" }

    public static func state(of event: String) -> TaskState? {
        guard event.hasPrefix("task.") else { return nil }
        return TaskState(rawValue: String(event.dropFirst(5)))
    }

    public static func name(of state: TaskState) -> String { "task.\(state.rawValue)" }
}

/// Where deliveries go: a node endpoint's rules (`http(s)://host:port`, no user info, query or fragment)
/// plus a path. Redirects are never followed, so this is the only URL a delivery is sent to.
public struct WebhookURL: Sendable, Hashable, CustomStringConvertible {
    public var endpoint: NodeEndpoint
    /// "" or a path starting with "/".
    public var path: String

    /// A path's characters: RFC 3986's unreserved and sub-delims, ':', '@', '/' and percent escapes.
    public static let pathPatternText = #"(/([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})*)*"#
    nonisolated(unsafe) static let pathPattern = try! Regex(pathPatternText)
    /// The whole rule as one regular expression (the OpenAPI document's pattern).
    public static var patternText: String { NodeEndpoint.patternText + pathPatternText }

    public init(parsing text: String, field: String = "url") throws(TaskyardError) {
        let rule = "must be http://host:port or https://host:port and a path, with no user info, query or fragment"
        guard text.utf8.count <= 2000, let schemeEnd = text.range(of: "://") else {
            throw .invalid(field, "\(rule) (got \(quoted(text)))")
        }
        let authorityAndPath = text[schemeEnd.upperBound...]
        let pathStart = authorityAndPath.firstIndex(of: "/") ?? text.endIndex
        let path = String(text[pathStart...])
        guard path.wholeMatch(of: Self.pathPattern) != nil else { throw .invalid(field, "\(rule) (got \(quoted(text)))") }
        do {
            endpoint = try NodeEndpoint(parsing: String(text[..<pathStart]), field: field)
        } catch {
            throw .invalid(field, "\(rule) (got \(quoted(text)))")
        }
        self.path = path
    }

    public var description: String { endpoint.description + path }
}

/// One event's delivery to one subscription, and how its sending went.
public struct WebhookDelivery: Sendable, Hashable {
    public enum State: String, Sendable, Hashable, CaseIterable {
        /// Not delivered yet; tried again at `nextAttemptAt`.
        case pending
        /// A 2xx answer came.
        case delivered
        /// Every attempt until `giveUpAt` failed.
        case failed
    }

    public var clusterID: String
    public var id: Int64
    public var webhookID: Int64
    /// The feed position of the event (`ChangeCursor`), its task and name.
    public var eventCursor: ChangeCursor
    public var taskID: Int64
    public var event: String
    public var state: State
    public var attempts: Int
    public var nextAttemptAt: Date?
    public var giveUpAt: Date
    public var lastStatus: Int?
    public var lastError: String?
    public var lastAttemptAt: Date?
    public var deliveredAt: Date?
    public var createdAt: Date

    public init(clusterID: String, id: Int64, webhookID: Int64, eventCursor: ChangeCursor, taskID: Int64, event: String, state: State,
                attempts: Int, nextAttemptAt: Date?, giveUpAt: Date, lastStatus: Int?, lastError: String?, lastAttemptAt: Date?,
                deliveredAt: Date?, createdAt: Date) {
        self.clusterID = clusterID
        self.id = id
        self.webhookID = webhookID
        self.eventCursor = eventCursor
        self.taskID = taskID
        self.event = event
        self.state = state
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.giveUpAt = giveUpAt
        self.lastStatus = lastStatus
        self.lastError = lastError
        self.lastAttemptAt = lastAttemptAt
        self.deliveredAt = deliveredAt
        self.createdAt = createdAt
    }

    /// The `webhook-id` of every attempt: the same for each, so that a receiver drops a repeat.
    public static func messageID(_ id: Int64) -> String { "msg_\(id)" }
}

/// When a failed delivery is tried again: `base` after the first attempt, four times longer after each
/// next one, never more than `maximum` apart (with the defaults: 5 s, 20 s, 80 s, 5 min, 21 min, 85 min,
/// then every 6 h), until the delivery's day is over. A tenth either way at random, so that deliveries
/// failed together do not come back together.
public struct WebhookBackoff: Sendable, Hashable {
    public var base: Duration
    public var maximum: Duration

    public init(base: Duration = .seconds(5), maximum: Duration = .seconds(6 * 3600)) {
        self.base = base
        self.maximum = maximum
    }

    /// The wait after attempt `attempts` (1 for the first) failed, before jitter.
    public func delay(afterAttempt attempts: Int) -> Duration {
        let exponent = min(max(attempts - 1, 0), 20)
        let seconds = min(base.inSeconds * pow(4, Double(exponent)), maximum.inSeconds)
        return .seconds(seconds)
    }

    public func jittered(afterAttempt attempts: Int) -> Duration {
        delay(afterAttempt: attempts) * Double.random(in: 0.9...1.1)
    }
}
