import Foundation
import Postgres
import TaskyardDomain
import TaskyardSecurity

/// The agents' side of the queue: polls and claims, reports, rollback grants, leases.
public struct QueueStore: Sendable, TaskStorePart {
    let context: StoreContext

    // MARK: - The agent's side

    /// A poll, in one statement: records that the node is alive, takes up to `limit` of its queued tasks
    /// whose `run_after` has passed, best priority first, marking them received with the next attempt
    /// number and a lease of `leaseSeconds`, and lists the tasks it holds whose cancel was requested.
    public func poll(cluster: String, node: String, limit: Int, lease: Duration,
                     recordHeartbeat: Bool = true) async throws -> PollOutcome {
        guard limit >= 1 else { throw TaskyardError.invalid("limit", "must be at least 1") }
        guard lease > .zero else { throw TaskyardError.invalid("lease", "must be positive") }
        let rows: [PostgresRow]
        do {
            rows = try await pool.run(QueueStatements.Poll(
                cluster: cluster, node: node, limit: limit, lease: lease, leaseByType: configuration.leaseByType,
                recordHeartbeat: recordHeartbeat, orderingHold: configuration.orderingHold))
        } catch let error as PostgresError where error.sqlState == "40001" {
            // Concurrent claims took the slots this one counted on, each time it was run: nothing was claimed,
            // and it looks again soon.
            return PollOutcome(tasks: [], cancel: [], waiting: true)
        }
        guard let header = rows.first else { throw PostgresError(kind: .server, message: "poll returned no row") }
        guard try header.decode("node_found", as: Bool.self) else {
            throw TaskyardError(.notFound, code: .nodeNotFound,
                                message: "node \(node) is not registered in cluster \(cluster)")
        }
        var outcome = PollOutcome(tasks: [], cancel: try header.decode("cancel"), waiting: try header.decode("waiting"))
        for row in rows where try row.decode("id", as: Int64?.self) != nil {
            outcome.tasks.append(ClaimedTask(task: try TaskRecord(row: row), lease: try row.decode("lease")))
        }
        activity.claimed(outcome.tasks.map(\.task))
        return outcome
    }

    /// Puts back claims whose answer never reached the agent: queued at once, their attempts given back.
    /// A claim under another lease (already reported, expired and claimed again) is left alone.
    @discardableResult
    public func releaseUndelivered(_ claims: [ClaimedTask], cluster: String, node: String) async throws -> [TaskRecord] {
        guard !claims.isEmpty else { return [] }
        let released = try await pool.run(QueueStatements.ReleaseUndelivered(
            cluster: cluster, node: node, claims: claims.map { ($0.task.id, $0.lease) }))
        signal(released)
        return released
    }

    /// The tasks of a poll, without the cancel requests.
    public func claim(cluster: String, node: String, limit: Int, lease: Duration) async throws -> [ClaimedTask] {
        try await poll(cluster: cluster, node: node, limit: limit, lease: lease).tasks
    }

    /// Ends a received task as its agent reports, recording each participant's outcome in `task_participants`.
    /// Refused with a conflict, changing nothing, unless the task is received by `node` at `report.attempt`.
    public func report(_ report: TaskReport, cluster: String, node: String, taskID: Int64) async throws -> TaskRecord {
        try await reportBatch([(taskID, report)], cluster: cluster, node: node, withEarlierOutcomes: true)[0].get()
    }

    /// Many reports in one statement. Each item stands alone: one that is invalid or stale gets its own
    /// error and changes nothing, and the others are written. Outcomes are in the order of `reports`; a
    /// written task's `participants` are the outcomes its report wrote, and, `withEarlierOutcomes`, the
    /// other nodes' latest before it (a batch's answer shows each item's state alone: it skips the lookup).
    public func reportBatch(_ reports: [(taskID: Int64, report: TaskReport)], cluster: String,
                            node: String, withEarlierOutcomes: Bool = false) async throws -> [Result<TaskRecord, TaskyardError>] {
        var outcomes = [Result<TaskRecord, TaskyardError>?](repeating: nil, count: reports.count)
        var acceptedItems: [Int] = []
        var ids = Set<Int64>()
        for (index, item) in reports.enumerated() {
            do {
                try item.report.validate(limits: configuration.limits)
                guard ids.insert(item.taskID).inserted else {
                    throw TaskyardError.invalid("task_id", "task \(item.taskID) is reported twice in this batch")
                }
                acceptedItems.append(index)
            } catch let error as TaskyardError {
                outcomes[index] = .failure(error)
            }
        }
        let accepted = acceptedItems
        // Stored texts hold no control characters: an agent's error must not become a terminal's escape.
        let items = accepted.map { (taskID: reports[$0].taskID, report: reports[$0].report.withoutControlCharacters()) }
        let reported = Self.stamped(items.map(\.report.participants))
        let statement = QueueStatements.Report(cluster: cluster, node: node,
                                               items: zip(items, reported).map { reportItem($0, participants: $1) },
                                               withEarlierOutcomes: withEarlierOutcomes)
        let (written, current, leaseMatches) = try await pool.withConnection { connection in
            var written: [Int: TaskRecord] = [:]
            var unblocked: [TaskSignal] = []
            if !items.isEmpty {
                for reportedTask in try connection.run(statement, settings: Self.robustPlan) {
                    let position = reportedTask.position
                    var task = reportedTask.task
                    // The statement's snapshot holds the outcomes recorded before it: add the ones it wrote.
                    let nodes = Set(reported[position].map(\.node))
                    task.participants = task.participants.filter { !nodes.contains($0.outcome.node) }
                        + reported[position].map { ParticipantRecord(attempt: task.attempt, outcome: $0) }
                    written[accepted[position]] = task
                    unblocked += reportedTask.unblockedNodes.map { .work(cluster: cluster, node: $0) }
                }
            }
            signal(written.values, extra: unblocked)
            // The items that changed nothing: say why, from their tasks as they stand.
            let refused = accepted.filter { written[$0] == nil }
            guard !refused.isEmpty else { return (written, [] as [TaskRecord], [:] as [Int64: Bool]) }
            let (current, leaseMatches) = try Self.claimsAsTheyStand(
                refused.map { (reports[$0].taskID, reports[$0].report.lease) }, cluster: cluster, on: connection)
            return (written, current, leaseMatches)
        }
        for (index, task) in written { outcomes[index] = .success(task) }
        var byID: [Int64: TaskRecord] = [:]
        for task in current { byID[task.id] = task }
        for index in accepted where outcomes[index] == nil {
            let (taskID, report) = reports[index]
            let claim = Self.claimRefusal(taskID: taskID, attempt: report.attempt, task: byID[taskID], cluster: cluster,
                                          node: node, leaseMatches: leaseMatches[taskID] != nil)
            outcomes[index] = .failure(claim ?? Self.refusal(of: report, task: byID[taskID]!, limits: configuration.limits,
                                                             rollingBack: leaseMatches[taskID] == true))
        }
        return outcomes.map { $0! }
    }

    /// Participants' times as they will be stored, to the microsecond (a missing end: now), so that the task
    /// a report answers with shows the times stored.
    private static func stamped(_ outcomes: [[ParticipantOutcome]]) -> [[ParticipantOutcome]] {
        func stored(_ date: Date) -> Date { Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1_000_000).rounded() / 1_000_000) }
        let now = Date()
        return outcomes.map { item in
            item.map { outcome in
                var outcome = outcome
                outcome.startedAt = outcome.startedAt.map(stored)
                outcome.finishedAt = stored(outcome.finishedAt ?? now)
                return outcome
            }
        }
    }

    /// One item of `TasksSQL.report`, its participants' outcomes stamped.
    private func reportItem(_ item: (taskID: Int64, report: TaskReport),
                            participants: [ParticipantOutcome]) -> QueueStatements.ReportItem {
        var detail: [String: JSONValue] = [:]
        if let error = item.report.error { detail["error"] = .string(error) }
        let failedNodes = item.report.participants.filter { $0.state != .completed }.map { JSONValue.string($0.node) }
        if !failedNodes.isEmpty { detail["unsuccessful_participants"] = .array(failedNodes) }
        return QueueStatements.ReportItem(
            taskID: item.taskID, attempt: item.report.attempt, state: item.report.state, result: item.report.result,
            error: item.report.error, eventDetail: detail.isEmpty ? nil : JSONValue.object(detail).jsonText,
            retryDelay: configuration.retry.delay(afterAttempt: item.report.attempt), lease: item.report.lease,
            participants: participants)
    }

    /// The tasks with these ids as they stand, and of those whose lease is the one given, whether rollback
    /// grants went out for their current attempt: what explains a request under a claim that changed nothing.
    private static func claimsAsTheyStand(_ claims: [(taskID: Int64, lease: String)], cluster: String,
                                          on connection: isolated PostgresConnection) throws -> ([TaskRecord], [Int64: Bool]) {
        let current = try TaskRecord.all(try connection.query(TasksSQL.getMany, [cluster, claims.map(\.taskID)]))
        var leaseMatches: [Int64: Bool] = [:]
        for row in try connection.query(TasksSQL.leaseMatches, [cluster, claims.map(\.taskID), claims.map(\.lease)]) {
            leaseMatches[try row.decode("id", as: Int64.self)] = try row.decode("rolling_back", as: Bool.self)
        }
        return (current, leaseMatches)
    }

    /// Why a request under a claim (a report, a request for rollback grants) changed nothing, when the claim
    /// is not the node's any more; nil when it still is.
    private static func claimRefusal(taskID: Int64, attempt: Int, task: TaskRecord?, cluster: String, node: String,
                                     leaseMatches: Bool) -> TaskyardError? {
        guard let task else { return unknownTask(cluster, taskID) }
        if task.state != .received {
            return TaskyardError(.conflict, code: task.state.isTerminal ? .alreadyFinished : .notReceived,
                                 message: "task \(taskID) is \(task.state.rawValue), not received; the request changes nothing")
        }
        if task.assignedNode != node {
            return TaskyardError(.conflict, code: .wrongNode,
                                 message: "task \(taskID) is held by node \(task.assignedNode), not \(node)")
        }
        if task.attempt != attempt {
            return TaskyardError(.conflict, code: .staleAttempt,
                                 message: "task \(taskID) is at attempt \(task.attempt); a request for attempt \(attempt) changes nothing")
        }
        guard leaseMatches else {
            return TaskyardError(.conflict, code: .staleLease,
                                 message: "the lease does not match the claim of task \(taskID) at attempt \(task.attempt); the request changes nothing",
                                 field: "lease")
        }
        return nil
    }

    /// Why a report under the node's own claim changed nothing.
    private static func refusal(of report: TaskReport, task: TaskRecord, limits: InputLimits, rollingBack: Bool) -> TaskyardError {
        do {
            try report.validate(participatingNodes: task.participatingNodes, completeWhen: task.completeWhen,
                                carriedSuccesses: task.participatingNodes.count - task.runningNodes.count, limits: limits)
        } catch {
            return error
        }
        if rollingBack, report.state == .completed {
            return TaskyardError(.conflict, code: .rollingBack,
                                 message: "rollback grants were issued for attempt \(task.attempt) of task \(task.id): it can only be reported failed or cancelled",
                                 field: "state")
        }
        return TaskyardError(.conflict, code: .reportRefused, message: "task \(task.id) changed while the report was written; the report changes nothing")
    }

    /// Rollback grants for an attempt the node holds: marks it as rolling back (from now on it can only be
    /// reported failed or cancelled) and returns the task, so that the caller signs a rollback grant for
    /// each of `nodes`. Refused as a report would be when the claim is not the node's any more; 422 when a
    /// node is not a participant.
    public func grantRollback(cluster: String, node: String, taskID: Int64, attempt: Int, lease: String,
                              nodes: [String]) async throws -> TaskRecord {
        guard attempt >= 1, attempt <= Int(Int32.max) else {
            throw TaskyardError.invalid("attempt", "must be the attempt the task was claimed with (1 or more)")
        }
        try TaskReport.checkLease(lease, field: "lease")
        guard TaskSubmission.Limits.participatingNodes.contains(nodes.count) else {
            throw TaskyardError.invalid("nodes", "must name 1 to \(TaskSubmission.Limits.participatingNodes.upperBound) participants")
        }
        guard Set(nodes).count == nodes.count else { throw TaskyardError.invalid("nodes", "names a node twice") }
        let statement = QueueStatements.GrantRollback(cluster: cluster, node: node, taskID: taskID, attempt: attempt,
                                                      lease: lease, nodes: nodes)
        return try await pool.withConnection { connection in
            if let task = try connection.run(statement).first { return task }
            let (current, leaseMatches) = try Self.claimsAsTheyStand([(taskID, lease)], cluster: cluster, on: connection)
            if let refusal = Self.claimRefusal(taskID: taskID, attempt: attempt, task: current.first, cluster: cluster, node: node,
                                               leaseMatches: leaseMatches[taskID] != nil) {
                throw refusal
            }
            let strangers = nodes.filter { !current[0].participatingNodes.contains($0) }
            guard strangers.isEmpty else {
                throw TaskyardError.invalid("nodes", "\(strangers.joined(separator: ", ")) \(strangers.count == 1 ? "is" : "are") not a participant of task \(taskID)")
            }
            throw TaskyardError(.conflict, code: .reportRefused, message: "task \(taskID) changed while the request was written; it changes nothing")
        }
    }

    /// For the statements that join a batch of items with the rows of `tasks_live` they lock (reports,
    /// heartbeats): no nested loops. The live side's statistics lag its size by a burst (autovacuum finds
    /// it empty between bursts); planned as one row, a report of 1,000 items joined them in a nested loop
    /// over all of them, 1,000,000 comparisons (measured: 400 of a report's 550 ms). Hash joins do not
    /// care how wrong the estimate is. Small reports too: the planner's nested loop for three items probed the node's held-task index once
    /// per item, over every task the node holds, and under a bulk drain took 4 to 25 s (measured with
    /// auto_explain, 2026-12-02). JIT off with it: a nested loop the planner cannot avoid (over `unnest` of a
    /// row's array) is costed as disabled, ten billion, far over the JIT thresholds — and compiling a report
    /// took 4 s of a 1-row report (measured, PostgreSQL 15 with jit on, its default).
    static let robustPlan = ["enable_nestloop = off", "jit = off"]

    /// Ids of the tasks the node holds whose cancel was requested.
    public func cancelRequested(cluster: String, node: String) async throws -> [Int64] {
        try await pool.query(TasksSQL.cancelRequested, [cluster, node]).map { row throws(PostgresError) in try row.decode("id") }
    }

    /// Renews the leases of the tasks the node still holds at the attempts it names.
    public func renewLeases(cluster: String, node: String, tasks: [HeldTask], lease: Duration) async throws -> LeaseRenewal {
        for (index, task) in tasks.enumerated() {
            guard task.id >= 1 else { throw TaskyardError.invalid("tasks[\(index)].id", "must be a task id (1 or more)") }
            guard task.attempt >= 1, task.attempt <= Int(Int32.max) else {
                throw TaskyardError.invalid("tasks[\(index)].attempt", "must be the attempt the task was claimed with (1 or more)")
            }
            try TaskReport.checkLease(task.lease, field: "tasks[\(index)].lease")
            if let progress = task.progress {
                try configuration.limits.check(progress.json, field: "tasks[\(index)].progress", bytes: configuration.limits.resultBytes)
            }
        }
        guard !tasks.isEmpty else { return LeaseRenewal(cancel: try await cancelRequested(cluster: cluster, node: node), lost: []) }
        let statement = QueueStatements.RenewLeases(cluster: cluster, node: node, lease: lease, tasks: tasks)
        let renewals = try await pool.withConnection { connection in try connection.run(statement, settings: Self.robustPlan) }
        return LeaseRenewal(cancel: renewals.filter(\.cancel).map(\.id), lost: renewals.filter { !$0.held }.map(\.id))
    }
}
