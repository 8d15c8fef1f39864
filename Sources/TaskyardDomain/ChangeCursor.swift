/// A position in a cluster's change feed (`GET …/changes`), sent as each change's event id and taken back
/// as `Last-Event-ID`: the transaction that wrote the change (its 64-bit id) and the change's event id.
///
/// The feed orders changes by transaction, then event id, and hands out only the changes of transactions
/// older than every transaction still running: one that commits later always sorts after every position
/// handed out before it, so a consumer resuming from a position misses nothing (event ids alone are taken
/// in one order and committed in another).
public struct ChangeCursor: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var transaction: UInt64
    public var event: Int64

    public init(transaction: UInt64, event: Int64) {
        self.transaction = transaction
        self.event = event
    }

    /// `<transaction>-<event>`, both decimal; nil for anything else.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 20 && $0.utf8.allSatisfy { (48...57).contains($0) } }),
              let transaction = UInt64(parts[0]), let event = Int64(parts[1]) else { return nil }
        self.init(transaction: transaction, event: event)
    }

    public var description: String { "\(transaction)-\(event)" }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.transaction, lhs.event) < (rhs.transaction, rhs.event)
    }
}

/// One change of the feed: a task's transition, at its position.
public struct TaskChange: Sendable, Hashable {
    public var cursor: ChangeCursor
    public var event: TaskEvent

    public init(cursor: ChangeCursor, event: TaskEvent) {
        self.cursor = cursor
        self.event = event
    }
}

/// A page of the change feed: the changes after a position, and where the next read starts.
public struct ChangePage: Sendable {
    public var changes: [TaskChange]
    /// The position to read from next: the last change's, or — when there were none — the start of the
    /// transactions still running (nothing can come before it any more).
    public var next: ChangeCursor
    /// Changes committed but not handed out yet (an older transaction still runs): read again soon.
    public var held: Bool

    public init(changes: [TaskChange], next: ChangeCursor, held: Bool) {
        self.changes = changes
        self.next = next
        self.held = held
    }
}
