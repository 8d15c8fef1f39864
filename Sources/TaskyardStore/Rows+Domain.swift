import Foundation
import Postgres
import TaskyardDomain

extension JSONValue: PostgresDecodable, PostgresEncodable {
    public static func decode(from cell: PostgresCell) throws(PostgresError) -> JSONValue {
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
        // Encoding a JSONValue cannot fail: it holds only JSON types (non-finite doubles become null).
        (try? PostgresJSON(encoding: self).text) ?? "null"
    }
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
        isParticipantOutcome = try row.decode("outcome")
        traceparent = try row.decode("traceparent")
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
    }
}
