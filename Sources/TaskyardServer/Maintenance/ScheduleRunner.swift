import Foundation
import Logging
import TaskyardAPI
import TaskyardDomain
import TaskyardStore

/// Submits the due slots of every schedule (River's periodic jobs; Nomad's periodic dispatch). A slot's task
/// carries the idempotency key of the slot (`ScheduleSlot.idempotencyKey`): a leader that dies after
/// submitting and before recording, or two leaders for a moment, submit it once all the same. What
/// `catch_up` says decides the slots missed while no leader ran.
public struct ScheduleRunner: MaintenanceDuty {
    public struct Configuration: MaintenanceDutyConfiguration {
        /// How often due schedules are looked for. Default 1 s: a slot's task is submitted within a second.
        public var interval: Duration = .seconds(1)
        /// Schedules handled per run (the rest are due on the next one).
        public var batchSize = 100
        public init() {}
    }

    public let name = "schedules"
    public let configuration: Configuration

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public func run(_ context: MaintenanceContext) async throws {
        for schedule in try await context.store.schedules.due(limit: configuration.batchSize) {
            try await submitDueSlots(of: schedule, context)
        }
    }

    private func submitDueSlots(of schedule: Schedule, _ context: MaintenanceContext) async throws {
        let store = context.store
        let metadata: Logger.Metadata = ["cluster": "\(schedule.clusterID)", "schedule": "\(schedule.id)"]
        let slots: [Date], next: Date?
        var tasks: [TaskRecord] = []
        do {
            let expression = try CronSchedule(schedule.cron, timeZone: schedule.timezone)
            (slots, next) = schedule.due(now: Date(), expression: expression, limit: store.configuration.maximumBatchSize)
            let request = try APIJSON.decode(SubmitTaskRequest.self, from: Data(schedule.task.bytes))
            let submissions = try slots.map { slot in
                var submission = try request.submission(idempotencyKey: nil, opaqueID: nil, fieldPrefix: "task.")
                submission.schedule = ScheduleSlot(id: schedule.id, slot: slot)
                submission.idempotencyKey = submission.schedule?.idempotencyKey
                return submission
            }
            if !submissions.isEmpty { tasks = try await store.submissions.submitBatch(submissions, cluster: schedule.clusterID) }
        } catch let error as TaskyardError where error.kind == .invalid {
            // The request no longer makes a task (a node it names is gone, its key was taken by another
            // request): these slots are skipped, said once, and the schedule waits for its next one. (A
            // conflict — another leader writing the same slots at this moment — is tried again next run.)
            context.logger.error("a schedule's slots could not be submitted; skipped", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            let expression = try? CronSchedule(schedule.cron, timeZone: schedule.timezone)
            _ = try await store.schedules.advance(schedule, next: expression?.next(after: Date()), lastRun: nil, lastTask: nil)
            return
        }
        let recorded = try await store.schedules.advance(schedule, next: next, lastRun: slots.last, lastTask: tasks.last?.id)
        if !slots.isEmpty {
            context.logger.info("schedule submitted", metadata: metadata.merging([
                "slots": "\(slots.count)", "tasks": "\(tasks.map(\.id))", "recorded": "\(recorded)",
            ]) { $1 })
        }
    }
}
