import Foundation
import Postgres
import TaskyardDomain

/// Schedules: a task request submitted at every slot of a cron expression, by the maintenance leader
/// (`Schedules`'s duty in the server), each slot once.
public struct ScheduleStore: Sendable, TaskStorePart {
    let context: StoreContext
    let submissions: SubmissionStore

    public func create(_ definition: ScheduleDefinition, cluster: String) async throws -> Schedule {
        let next = try await check(definition, cluster: cluster)
        guard let row = try await pool.query(SchedulesSQL.create, bindings(definition, cluster: cluster, next: next)).first else {
            throw TaskyardError(.conflict, code: .scheduleExists, message: "schedule \(definition.id) already exists in cluster \(cluster)", field: "id")
        }
        return try Schedule(row: row)
    }

    /// Replaces what the schedule says; its next slot is the first after now.
    public func replace(_ definition: ScheduleDefinition, cluster: String) async throws -> Schedule {
        let next = try await check(definition, cluster: cluster)
        guard let row = try await pool.query(SchedulesSQL.replace, bindings(definition, cluster: cluster, next: next)).first else {
            throw unknownSchedule(cluster, definition.id)
        }
        return try Schedule(row: row)
    }

    /// Pauses or resumes it; a resumed schedule waits for its first slot after now (the ones it missed
    /// while paused are not caught up).
    public func setPaused(_ paused: Bool, cluster: String, id: String) async throws -> Schedule {
        let current = try await schedule(cluster: cluster, id: id)
        let next = try CronSchedule(current.cron, timeZone: current.timezone).next(after: Date())
        guard let row = try await pool.query(SchedulesSQL.setPaused, [cluster, id, paused, next]).first else {
            throw unknownSchedule(cluster, id)
        }
        return try Schedule(row: row)
    }

    public func schedule(cluster: String, id: String) async throws -> Schedule {
        guard let row = try await pool.query(SchedulesSQL.get, [cluster, id]).first else { throw unknownSchedule(cluster, id) }
        return try Schedule(row: row)
    }

    /// A page of the cluster's schedules in id order, after the id `after`.
    public func schedules(cluster: String, after: String = "", limit: Int = 1000) async throws -> [Schedule] {
        try await pool.withConnection { connection in
            try Self.requireCluster(cluster, on: connection)
            return try connection.query(SchedulesSQL.list, [cluster, after, limit]).map { row throws(PostgresError) in try Schedule(row: row) }
        }
    }

    public func delete(cluster: String, id: String) async throws {
        guard try await !pool.query(SchedulesSQL.delete, [cluster, id]).isEmpty else { throw unknownSchedule(cluster, id) }
    }

    /// The unpaused schedules whose next slot has come, most overdue first.
    public func due(limit: Int = 100) async throws -> [Schedule] {
        try await pool.query(SchedulesSQL.due, [limit]).map { row throws(PostgresError) in try Schedule(row: row) }
    }

    /// Records what the leader submitted for the schedule as it read it; false when it changed meanwhile (a
    /// replace, a pause, another leader): then nothing is recorded, and the tasks submitted stand.
    public func advance(_ schedule: Schedule, next: Date?, lastRun: Date?, lastTask: Int64?) async throws -> Bool {
        try await !pool.query(SchedulesSQL.advance, [schedule.clusterID, schedule.id, schedule.revision, next, lastRun, lastTask]).isEmpty
    }

    /// Every check a definition must pass; returns its next slot after now.
    private func check(_ definition: ScheduleDefinition, cluster: String) async throws -> Date? {
        try Identifier.validate(definition.id, field: "id")
        let expression = try CronSchedule(definition.cron, timeZone: definition.timezone)
        if definition.submission.parentID != nil {
            throw TaskyardError.invalid("task.parent_id", "a schedule's tasks have no parent")
        }
        if definition.submission.idempotencyKey != nil {
            throw TaskyardError.invalid("task.idempotency_key", "a schedule's tasks are keyed by their slot")
        }
        try await submissions.check(definition.submission, cluster: cluster, fieldPrefix: "task.")
        return expression.next(after: Date())
    }

    private func bindings(_ definition: ScheduleDefinition, cluster: String, next: Date?) -> [any PostgresEncodable] {
        [cluster, definition.id, definition.cron, definition.timezone, definition.task, definition.catchUp.rawValue,
         definition.paused, next]
    }
}

func unknownSchedule(_ cluster: String, _ id: String) -> TaskyardError {
    TaskyardError(.notFound, code: .scheduleNotFound, message: "schedule \(id) does not exist in cluster \(cluster)")
}

extension Schedule {
    init(row: PostgresRow) throws(PostgresError) {
        self.init(clusterID: try row.decode("cluster_id"), id: try row.decode("id"), cron: try row.decode("cron"),
                  timezone: try row.decode("timezone"), task: try row.decode("task"),
                  catchUp: Schedule.CatchUp(rawValue: try row.decode("catch_up")) ?? .skip, paused: try row.decode("paused"),
                  nextRunAt: try row.decode("next_run_at"), lastRunAt: try row.decode("last_run_at"),
                  lastTaskID: try row.decode("last_task_id"), createdAt: try row.decode("created_at"),
                  updatedAt: try row.decode("updated_at"), revision: try row.decode("revision"))
    }
}
