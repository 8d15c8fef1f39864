import Foundation
import TaskyardDomain

/// `POST …/schedules` and `PUT …/schedules/{schedule_id}`: a task request and when to submit it.
public struct ScheduleRequest: Codable, Sendable {
    /// Required on POST; on PUT, the path's id (a different one is 422).
    public var id: String?
    public var cron: String
    public var timezone: String?
    public var task: SubmitTaskRequest
    public var catchUp: Schedule.CatchUp?
    public var paused: Bool?

    enum CodingKeys: String, CodingKey {
        case id, cron, timezone, task, paused, catchUp = "catch_up"
    }

    public init(id: String?, cron: String, timezone: String? = nil, task: SubmitTaskRequest, catchUp: Schedule.CatchUp? = nil,
                paused: Bool? = nil) {
        self.id = id
        self.cron = cron
        self.timezone = timezone
        self.task = task
        self.catchUp = catchUp
        self.paused = paused
    }

    /// The store's definition of it, its task request checked as a submission would be (fields prefixed
    /// `task.`) and kept as the API reads it back.
    public func definition(id: String) throws -> ScheduleDefinition {
        let submission = try task.submission(idempotencyKey: task.idempotencyKey, opaqueID: nil, fieldPrefix: "task.")
        return ScheduleDefinition(id: id, cron: cron, timezone: timezone ?? "UTC", task: RawJSON(trusted: Array(try APIJSON.encode(task))),
                                       submission: submission, catchUp: catchUp ?? .skip, paused: paused ?? false)
    }
}

extension Schedule.CatchUp: Codable {}

/// A schedule as the API shows it.
public struct ScheduleObject: Codable, Sendable {
    public var id: String
    public var clusterID: String
    public var cron: String
    public var timezone: String
    public var task: RawJSON
    public var catchUp: Schedule.CatchUp
    public var paused: Bool
    public var nextRunAt: Date?
    public var lastRunAt: Date?
    public var lastTaskID: Int64?
    public var createdAt: Date
    public var updatedAt: Date

    enum CodingKeys: String, CodingKey {
        case id, cron, timezone, task, paused
        case clusterID = "cluster_id", catchUp = "catch_up", nextRunAt = "next_run_at", lastRunAt = "last_run_at"
        case lastTaskID = "last_task_id", createdAt = "created_at", updatedAt = "updated_at"
    }

    public init(_ schedule: Schedule) {
        id = schedule.id
        clusterID = schedule.clusterID
        cron = schedule.cron
        timezone = schedule.timezone
        task = schedule.task
        catchUp = schedule.catchUp
        paused = schedule.paused
        nextRunAt = schedule.nextRunAt
        lastRunAt = schedule.lastRunAt
        lastTaskID = schedule.lastTaskID
        createdAt = schedule.createdAt
        updatedAt = schedule.updatedAt
    }

    /// Every field, null included.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(clusterID, forKey: .clusterID)
        try container.encode(cron, forKey: .cron)
        try container.encode(timezone, forKey: .timezone)
        try container.encode(task, forKey: .task)
        try container.encode(catchUp, forKey: .catchUp)
        try container.encode(paused, forKey: .paused)
        try container.encode(nextRunAt, forKey: .nextRunAt)
        try container.encode(lastRunAt, forKey: .lastRunAt)
        try container.encode(lastTaskID, forKey: .lastTaskID)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
    }
}

public struct ScheduleList: Codable, Sendable {
    public var schedules: [ScheduleObject]
    public init(schedules: [ScheduleObject]) { self.schedules = schedules }
}
