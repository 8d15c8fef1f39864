import Foundation
import TaskyardAPI
import TaskyardDomain
import TaskyardStore

/// One change stream's reading of the change feed (`TaskReads.changes`), as server-sent events. It reads
/// when told of a change — at most every `minimumGap`, however many changes a burst brings — when the feed
/// holds changes back (a transaction older than them still runs), and every `idleInterval` whatever
/// happens (a change this server was not told of still arrives).
struct ChangeFeed {
    /// How often a stream's timer reminds it to look (`Wakeups.Watched.recheck`).
    static let recheckInterval: Duration = .milliseconds(100)
    static let minimumGap: Duration = .milliseconds(100)
    static let idleInterval: Duration = .seconds(1)
    /// Changes per read; a longer backlog is read page after page.
    static let pageSize = 500

    let cluster: String
    private(set) var position: ChangeCursor
    let reads: TaskReads
    private var changedSinceRead = false
    private var held = false
    private var lastRead: ContinuousClock.Instant?

    init(cluster: String, position: ChangeCursor, reads: TaskReads) {
        self.cluster = cluster
        self.position = position
        self.reads = reads
    }

    /// A hint came: something changed.
    mutating func changed() { changedSinceRead = true }

    /// The events of the changes after `position`, when it is time to read (always when `force`); "" when
    /// it is not, or nothing changed.
    mutating func read(force: Bool) async throws -> String {
        let now = ContinuousClock.now
        if !force, let lastRead {
            let since = lastRead.duration(to: now)
            guard since >= Self.idleInterval || ((changedSinceRead || held) && since >= Self.minimumGap) else { return "" }
        }
        lastRead = now
        changedSinceRead = false
        var text = ""
        while true {
            let page = try await reads.changes(cluster: cluster, after: position, limit: Self.pageSize)
            for change in page.changes { text += Self.serverSentEvent(change) }
            position = page.next
            held = page.held
            if page.changes.count < Self.pageSize { return text }
        }
    }

    static func serverSentEvent(_ change: TaskChange) -> String {
        let data = (try? APIJSON.encode(ChangeObject(change))).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return "id: \(change.cursor)\nevent: change\ndata: \(data)\n\n"
    }
}
