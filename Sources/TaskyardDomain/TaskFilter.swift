import Foundation

/// The filters of `GET …/tasks`; every one is optional.
public struct TaskFilter: Sendable, Hashable {
    public enum Parent: Sendable, Hashable {
        /// Root tasks only (`parent_id=none`).
        case roots
        /// Children of this task.
        case task(Int64)
    }

    public var states: [TaskState]?
    public var type: String?
    /// The assigned node (initiator).
    public var node: String?
    /// created_at ≥ since.
    public var since: Date?
    /// created_at < until.
    public var until: Date?
    public var parent: Parent?
    public var opaqueID: String?
    public var includeInternal: Bool
    public var limit: Int
    /// The cursor from the previous page.
    public var after: TaskCursor?

    public static let defaultLimit = 100
    public static let limitRange = 1...1000

    public init(states: [TaskState]? = nil, type: String? = nil, node: String? = nil, since: Date? = nil,
                until: Date? = nil, parent: Parent? = nil, opaqueID: String? = nil, includeInternal: Bool = false,
                limit: Int = TaskFilter.defaultLimit, after: TaskCursor? = nil) {
        self.states = states
        self.type = type
        self.node = node
        self.since = since
        self.until = until
        self.parent = parent
        self.opaqueID = opaqueID
        self.includeInternal = includeInternal
        self.limit = limit
        self.after = after
    }

    public func validate() throws(TaskyardError) {
        guard Self.limitRange.contains(limit) else {
            throw .invalid("limit", "must be between 1 and \(Self.limitRange.upperBound)")
        }
        for (field, value) in [("type", type), ("node", node), ("opaque_id", opaqueID)] {
            if let value { try InputLimits.checkNoNUL(value, field: field) }
        }
        if let opaqueID { try TaskSubmission.validateOpaqueID(opaqueID, field: "opaque_id") }
        if let since { try DateRange.check(since, field: "since") }
        if let until { try DateRange.check(until, field: "until") }
    }
}

/// Where the next page of a task list starts: the creation time (in microseconds since 1970, as
/// PostgreSQL keeps it) and id of the last task of the page, as lists are read oldest first by
/// (created_at, id). Written `micros.id`; a bare id (the form of earlier versions) is read as that
/// task's place in the list.
public struct TaskCursor: Sendable, Hashable, CustomStringConvertible {
    public let createdMicros: Int64?
    public let lastID: Int64

    public init(createdMicros: Int64?, lastID: Int64) {
        self.createdMicros = createdMicros
        self.lastID = lastID
    }

    public init(_ text: String) throws(TaskyardError) {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let id = Int64(parts[parts.count - 1]), id > 0 else {
            throw .invalid("after", "is not a cursor from a previous page")
        }
        if parts.count == 2 {
            // Years 1–9999, the times a task can have.
            guard let micros = Int64(parts[0]), (-62_135_596_800_000_000...253_402_300_799_999_999).contains(micros) else {
                throw .invalid("after", "is not a cursor from a previous page")
            }
            createdMicros = micros
        } else {
            createdMicros = nil
        }
        lastID = id
    }

    public var description: String { createdMicros.map { "\($0).\(lastID)" } ?? String(lastID) }
}

/// One page of a task list.
public struct TaskPage: Sendable, Hashable {
    public var tasks: [TaskRecord]
    /// nil on the last page.
    public var next: TaskCursor?

    public init(tasks: [TaskRecord], next: TaskCursor?) {
        self.tasks = tasks
        self.next = next
    }
}

/// Where the next page of a task tree starts: the depth and id of the last task of the page (trees are
/// listed breadth first, by depth then id). Written `depth.id`.
public struct TreeCursor: Sendable, Hashable, CustomStringConvertible {
    public let depth: Int
    public let lastID: Int64

    public init(depth: Int, lastID: Int64) {
        self.depth = depth
        self.lastID = lastID
    }

    public init(_ text: String) throws(TaskyardError) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let depth = Int(parts[0]), depth >= 0, depth <= Int(Int32.max),
              let id = Int64(parts[1]), id > 0
        else { throw .invalid("after", "is not a cursor from a previous page") }
        self.depth = depth
        lastID = id
    }

    public var description: String { "\(depth).\(lastID)" }
}
