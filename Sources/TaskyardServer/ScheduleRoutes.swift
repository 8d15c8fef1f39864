import Hummingbird
import TaskyardAPI
import TaskyardDomain

/// `…/schedules`: task requests submitted at every slot of a cron expression (the leader's `ScheduleRunner`
/// submits them).
extension APIRoutes {
    func createSchedule(_ request: inout Request, _ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let body = try await decode(ScheduleRequest.self, &request)
        guard let id = body.id else { throw TaskyardError(.invalid, code: .missingField, message: "id: is required", field: "id") }
        let schedule = try await store.schedules.create(try body.definition(id: id), cluster: cluster)
        return try jsonResponse(ScheduleObject(schedule), status: .created)
    }

    func listSchedules(_ request: Request, _ context: TaskyardRequestContext) async throws -> Response {
        try request.rejectEmptyQueryValues()
        let cluster = try context.pathIdentifier("cluster_id")
        return try jsonResponse(ScheduleList(schedules: try await store.schedules.schedules(cluster: cluster).map(ScheduleObject.init)))
    }

    func getSchedule(_ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let id = try context.pathIdentifier("schedule_id")
        return try jsonResponse(ScheduleObject(try await store.schedules.schedule(cluster: cluster, id: id)))
    }

    /// Replaces what the schedule says (the body of a POST; its `id`, if given, must be the path's).
    func replaceSchedule(_ request: inout Request, _ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let id = try context.pathIdentifier("schedule_id")
        let body = try await decode(ScheduleRequest.self, &request)
        if let given = body.id, given != id { throw TaskyardError.invalid("id", "is \(given), the path says \(id)") }
        return try jsonResponse(ScheduleObject(try await store.schedules.replace(try body.definition(id: id), cluster: cluster)))
    }

    func deleteSchedule(_ context: TaskyardRequestContext) async throws -> Response {
        try await store.schedules.delete(cluster: try context.pathIdentifier("cluster_id"), id: try context.pathIdentifier("schedule_id"))
        return Response(status: .noContent)
    }

    func pauseSchedule(_ context: TaskyardRequestContext, paused: Bool) async throws -> Response {
        let schedule = try await store.schedules.setPaused(paused, cluster: try context.pathIdentifier("cluster_id"),
                                                          id: try context.pathIdentifier("schedule_id"))
        return try jsonResponse(ScheduleObject(schedule))
    }
}
