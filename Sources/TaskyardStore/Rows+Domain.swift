import Foundation
import Postgres
import TaskyardDomain

extension JSONValue: PostgresDecodable, PostgresEncodable {
    public static func decode(from cell: PostgresCell) throws(PostgresError) -> JSONValue {
        if cell.type == .jsonb || cell.type == .json, let bytes = cell.bytes, let value = JSONParser.parse(bytes) {
            return value
        }
        let json = try PostgresJSON.decode(from: cell)
        do {
            return try json.decode(JSONValue.self)
        } catch {
            throw PostgresError(kind: .decoding, message: "column \"\(cell.column)\" holds JSON that cannot be read: \(error)")
        }
    }

    /// The JSON text, for a `$n::jsonb` parameter.
    public var postgresText: String? { jsonText }

    public var jsonText: String {
        var json = JSONWriter(capacity: 64)
        json.value(self)
        return String(decoding: json.bytes, as: UTF8.self)
    }
}

extension RawJSON: PostgresDecodable, PostgresEncodable {
    /// jsonb's text as PostgreSQL wrote it: valid JSON, kept as it is.
    public static func decode(from cell: PostgresCell) throws(PostgresError) -> RawJSON {
        guard cell.type == .jsonb || cell.type == .json, let bytes = cell.bytes else {
            throw PostgresError(kind: .decoding, message: "column \"\(cell.column)\" of type \(cell.type) is not JSON")
        }
        return RawJSON(trusted: Array(bytes))
    }

    /// The JSON text, for a `$n::jsonb` parameter.
    public var postgresText: String? { text }
}

extension TaskState: PostgresDecodable, PostgresEncodable {
    public static func decode(from cell: PostgresCell) throws(PostgresError) -> TaskState {
        let text = try String.decode(from: cell)
        guard let state = TaskState(rawValue: text) else {
            throw PostgresError(kind: .decoding, message: "column \"\(cell.column)\" holds unknown state \(text)")
        }
        return state
    }

    public var postgresText: String? { rawValue }
}

extension TaskRecord {
    init(row: PostgresRow) throws(PostgresError) {
        let affinity: String = try row.decode("affinity")
        self.init(
            id: try row.decode("id"),
            clusterID: try row.decode("cluster_id"),
            type: try row.decode("type"),
            state: try row.decode("state"),
            payload: try row.decode("payload"),
            assignedNode: try row.decode("assigned_node"),
            participatingNodes: try row.decode("participating_nodes"),
            parentID: try row.decode("parent_id"),
            attempt: try row.decode("attempt"),
            maxAttempts: try row.decode("max_attempts"),
            priority: try row.decode("priority"),
            runAfter: try row.decode("run_after"),
            timeoutSeconds: try row.decode("timeout_seconds"),
            leaseExpiresAt: try row.decode("lease_expires_at"),
            orderingKey: try row.decode("ordering_key"),
            idempotencyKey: try row.decode("idempotency_key"),
            opaqueID: try row.decode("opaque_id"),
            affinity: Affinity(rawValue: affinity) ?? .any,
            abortable: try row.decode("abortable"),
            isInternal: try row.decode("internal"),
            result: try row.decode("result"),
            error: try row.decode("error"),
            progress: try row.decode("progress"),
            cancelRequestedAt: try row.decode("cancel_requested_at"),
            cancelReason: try row.decode("cancel_reason"),
            createdAt: try row.decode("created_at"),
            receivedAt: try row.decode("received_at"),
            finishedAt: try row.decode("finished_at"),
            updatedAt: try row.decode("updated_at"))
        traceparent = try row.decode("traceparent")
        completeWhen = CompletionPolicy(stored: try row.decode("complete_when")) ?? .all
        attemptNodes = try row.decode("attempt_nodes")
        if let key: String = try row.decode("concurrency_key") {
            let strategy: String = try row.decode("on_limit")
            concurrency = ConcurrencyKey(key: key, limit: try row.decode("concurrency_limit", as: Int?.self) ?? 1,
                                         onLimit: LimitStrategy(rawValue: strategy) ?? .queue)
        }
        onOffline = OfflinePolicy(rawValue: try row.decode("on_offline")) ?? .wait
        if let type: String = try row.decode("on_finish_type"), let node: String = try row.decode("on_finish_node") {
            onFinish = FollowUp(type: type, node: node)
        }
        followUpID = try row.decode("follow_up_id")
        if let schedule: String = try row.decode("schedule_id"), let slot: Date = try row.decode("schedule_slot") {
            self.schedule = ScheduleSlot(id: schedule, slot: slot)
        }
        if row.rows.columnNames.contains("waiting_for") {
            let waiting: [String]? = try row.decode("waiting_for")
            waitingFor = waiting?.isEmpty == false ? waiting : nil
        }
        participants = try ParticipantRecord.latest(from: row.decode("participants", as: PostgresJSON.self))
    }

    static func all(_ rows: PostgresRows) throws(PostgresError) -> [TaskRecord] {
        var tasks: [TaskRecord] = []
        tasks.reserveCapacity(rows.count)
        for row in rows { tasks.append(try TaskRecord(row: row)) }
        return tasks
    }
}

extension TaskEvent {
    init(row: PostgresRow) throws(PostgresError) {
        self.init(id: try row.decode("id"), taskID: try row.decode("task_id"), from: try row.decode("from_state"),
                  to: try row.decode("to_state"), node: try row.decode("node"), attempt: try row.decode("attempt"),
                  at: try row.decode("at"), detail: try row.decode("detail"))
    }
}

extension Cluster {
    init(row: PostgresRow) throws(PostgresError) {
        self.init(id: try row.decode("id"), name: try row.decode("name"), createdAt: try row.decode("created_at"))
    }
}

extension Node {
    init(row: PostgresRow) throws(PostgresError) {
        let status: String = try row.decode("status")
        self.init(clusterID: try row.decode("cluster_id"), id: try row.decode("id"),
                  endpoint: try row.decode("endpoint"), status: NodeStatus(rawValue: status) ?? .offline,
                  labels: try row.decode("labels"), capacity: try row.decode("capacity"),
                  registeredAt: try row.decode("registered_at"), lastSeenAt: try row.decode("last_seen_at"),
                  heldTasks: try row.decode("held_tasks"))
        slotsInUse = try row.decode("in_use")
    }
}

extension ParticipantRecord {
    /// The `participants` column of a task row (`TasksSQL.participants(of:)`): a jsonb array, times in µs.
    static func latest(from json: PostgresJSON) throws(PostgresError) -> [ParticipantRecord] {
        // Most rows (every task not yet reported) hold none: no JSON parse for them.
        if json.text == "[]" { return [] }
        var text = json.text
        // Read as a message: each outcome's `result` stays the bytes PostgreSQL wrote.
        guard let items = text.withUTF8({ JSONParser.parseMessage($0) }) else {
            throw PostgresError(kind: .decoding, message: "column \"participants\" holds JSON that cannot be read")
        }
        guard case .array(let array) = items else { return [] }
        return array.compactMap { item in
            guard case .object(let fields) = item,
                  case .scalar(.string(let node))? = fields["node"], case .scalar(.integer(let attempt))? = fields["attempt"],
                  case .scalar(.string(let stateText))? = fields["state"], let state = ReportedState(rawValue: stateText)
            else { return nil }
            func date(_ key: String) -> Date? {
                guard case .scalar(.integer(let micros))? = fields[key] else { return nil }
                return Date(timeIntervalSince1970: Double(micros) / 1_000_000)
            }
            let error: String? = if case .scalar(.string(let text))? = fields["error"] { text } else { nil }
            let result: RawJSON? = if let value = fields["result"], !value.isNull { value.raw } else { nil }
            return ParticipantRecord(attempt: Int(attempt), outcome: ParticipantOutcome(
                node: node, state: state, result: result, error: error, startedAt: date("started_us"),
                finishedAt: date("finished_us"), rollback: ParticipantRollback(json: fields["rollback"]?.value),
                decided: fields["decided"].map { if case .scalar(.bool(true)) = $0 { true } else { false } } ?? false))
        }
    }

    /// A row of `TasksSQL.participantOutcomes`.
    init(row: PostgresRow) throws(PostgresError) {
        let state: String = try row.decode("state")
        let rollback: JSONValue? = try row.decode("rollback")
        self.init(attempt: try row.decode("attempt"), outcome: ParticipantOutcome(
            node: try row.decode("node"), state: ReportedState(rawValue: state) ?? .failed,
            result: try row.decode("result"), error: try row.decode("error"), startedAt: try row.decode("started_at"),
            finishedAt: try row.decode("finished_at"), rollback: ParticipantRollback(json: rollback),
            decided: try row.decode("decided")))
    }
}
