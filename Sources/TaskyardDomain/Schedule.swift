import Foundation

/// A task request submitted at every slot of a cron expression (`POST …/schedules`).
public struct Schedule: Sendable, Hashable {
    /// What the leader does with the slots that passed while nothing submitted them (downtime): `skip`
    /// them (a slot is submitted only when it is due now, within a minute), submit `one` (the latest), or
    /// `all` of them.
    public enum CatchUp: String, Sendable, Hashable, CaseIterable {
        case skip, one, all
    }

    public var clusterID: String
    public var id: String
    public var cron: String
    public var timezone: String
    /// The task request, as the API took it.
    public var task: RawJSON
    public var catchUp: CatchUp
    public var paused: Bool
    /// The next slot not yet submitted; nil when none ever comes.
    public var nextRunAt: Date?
    public var lastRunAt: Date?
    public var lastTaskID: Int64?
    public var createdAt: Date
    public var updatedAt: Date
    /// Every write adds one (the leader records a slot only on the schedule it read).
    public var revision: Int64

    public init(clusterID: String, id: String, cron: String, timezone: String, task: RawJSON, catchUp: CatchUp, paused: Bool,
                nextRunAt: Date?, lastRunAt: Date?, lastTaskID: Int64?, createdAt: Date, updatedAt: Date, revision: Int64) {
        self.clusterID = clusterID
        self.id = id
        self.cron = cron
        self.timezone = timezone
        self.task = task
        self.catchUp = catchUp
        self.paused = paused
        self.nextRunAt = nextRunAt
        self.lastRunAt = lastRunAt
        self.lastTaskID = lastTaskID
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.revision = revision
    }

    /// How late a slot may be submitted under `skip`: one missed by more was missed.
    public static let skipGrace: TimeInterval = 60

    /// The slots to submit now, of those due from `nextRunAt` through `now` (at most `limit`), and the slot to
    /// wait for next.
    public func due(now: Date, expression: CronSchedule, limit: Int = 1000) -> (submit: [Date], next: Date?) {
        guard let first = nextRunAt, first <= now else { return ([], nextRunAt) }
        switch catchUp {
        case .all:
            let passed = [first] + expression.slots(after: first, through: now, limit: limit - 1)
            // More than `limit` behind: the rest come on the next run.
            return (passed, expression.next(after: passed[passed.count - 1]))
        case .one:
            return ([expression.latestSlot(from: first, through: now)], expression.next(after: now))
        case .skip:
            let latest = expression.latestSlot(from: first, through: now)
            return (now.timeIntervalSince(latest) <= Self.skipGrace ? [latest] : [], expression.next(after: now))
        }
    }
}

/// What a request says a schedule is: its task request as given (kept, and read again at each slot) and the
/// submission that request makes (checked when the schedule is made or replaced).
public struct ScheduleDefinition: Sendable {
    public var id: String
    public var cron: String
    public var timezone: String
    public var task: RawJSON
    public var submission: TaskSubmission
    public var catchUp: Schedule.CatchUp
    public var paused: Bool

    public init(id: String, cron: String, timezone: String = "UTC", task: RawJSON, submission: TaskSubmission,
                catchUp: Schedule.CatchUp = .skip, paused: Bool = false) {
        self.id = id
        self.cron = cron
        self.timezone = timezone
        self.task = task
        self.submission = submission
        self.catchUp = catchUp
        self.paused = paused
    }
}
