import Foundation
import TaskyardDomain

/// A message that writes its own JSON with `JSONWriter`: the same bytes as its `Encodable` conformance.
public protocol JSONWritable: Encodable {
    func write(to json: inout JSONWriter)
}

extension JSONWritable {
    public var jsonBytes: [UInt8] {
        var json = JSONWriter()
        write(to: &json)
        return json.bytes
    }
}

// Fields in the order `.sortedKeys` puts them (byte order: `_` before the letters).

extension TaskObject: JSONWritable {
    public func write(to json: inout JSONWriter) { write(to: &json, children: nil, claim: nil) }

    /// The task's fields, with a detail's `children` or a claim's `lease` and `grants` in their sorted places.
    func write(to json: inout JSONWriter, children: [TaskSummary]?,
               claim: (lease: String, grants: [String: String], attemptTraceparent: String?)?) {
        json.object { json in
            json.field("abortable", abortable)
            json.field("assigned_node", assignedNode)
            json.field("attempt", attempt)
            if let traceparent = claim?.attemptTraceparent { json.field("attempt_traceparent", traceparent) }
            json.field("cancel_requested", cancelRequested)
            if let children {
                json.key("children")
                json.array(children) { $1.write(to: &$0) }
            }
            json.field("cluster_id", clusterID)
            json.field("complete_when", completeWhen)
            json.field("concurrency_key", concurrencyKey)
            json.field("concurrency_limit", concurrencyLimit)
            json.field("created_at", createdAt)
            json.field("error", error)
            json.field("finished_at", finishedAt)
            json.field("follow_up_id", followUpID)
            if let claim { json.field("grants", JSONValue.object(claim.grants.mapValues(JSONValue.string))) }
            json.field("id", id)
            json.field("idempotency_key", idempotencyKey)
            json.field("internal", `internal`)
            if let claim { json.field("lease", claim.lease) }
            json.field("lease_expires_at", leaseExpiresAt)
            json.field("max_attempts", maxAttempts)
            json.field("on_finish", onFinish)
            json.field("opaque_id", opaqueID)
            json.field("ordering_key", orderingKey)
            json.field("parent_id", parentID)
            json.key("participants")
            json.array(participants) { $1.write(to: &$0) }
            json.field("participating_nodes", participatingNodes)
            json.field("payload", payload)
            json.field("priority", priority)
            json.field("progress", progress)
            json.field("received_at", receivedAt)
            json.field("result", result)
            json.field("run_after", runAfter)
            json.field("schedule_id", scheduleID)
            json.field("schedule_slot", scheduleSlot)
            json.field("state", state.rawValue)
            json.field("timeout_seconds", timeoutSeconds)
            json.field("traceparent", traceparent)
            json.field("type", type)
            json.field("updated_at", updatedAt)
            json.field("waiting_for", waitingFor)
        }
    }
}

extension ParticipantObject: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.field("attempt", attempt)
            json.field("decided", decided)
            json.field("error", error)
            json.field("finished_at", finishedAt)
            json.field("node", node)
            json.field("result", result)
            json.field("rollback", rollback)
            json.field("started_at", startedAt)
            json.field("state", state.rawValue)
        }
    }
}

extension TaskSummary: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.field("assigned_node", assignedNode)
            json.field("attempt", attempt)
            json.field("error", error)
            json.field("finished_at", finishedAt)
            json.field("id", id)
            json.field("received_at", receivedAt)
            json.field("result", result)
            json.field("state", state.rawValue)
            json.field("type", type)
        }
    }
}

extension TaskDetail: JSONWritable {
    public func write(to json: inout JSONWriter) { task.write(to: &json, children: children, claim: nil) }
}

extension ClaimedTaskObject: JSONWritable {
    public func write(to json: inout JSONWriter) { task.write(to: &json, children: nil, claim: (lease, grants, traceparent)) }
}

extension TaskList: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.field("next", next)
            json.key("tasks")
            json.array(tasks) { $1.write(to: &$0) }
        }
    }
}

extension TaskBatch: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.key("tasks")
            json.array(tasks) { $1.write(to: &$0) }
        }
    }
}

extension PollResponse: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.key("cancel")
            json.array(cancel) { $0.integer($1) }
            json.key("tasks")
            json.array(tasks) { $1.write(to: &$0) }
        }
    }
}

// MARK: - Read by hand (see JSONReadable): field for field what the synthesized `Decodable` reads

private typealias F = JSONFields

extension TaskObject: JSONReadable {
    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> TaskObject { try TaskObject(JSONFields(json)) }

    init(_ fields: JSONFields) throws(JSONUnreadable) {
        id = try fields.required("id", F.int64)
        clusterID = try fields.required("cluster_id", F.string)
        type = try fields.required("type", F.string)
        state = try fields.required("state", F.enumeration)
        payload = try fields.required("payload", F.raw)
        assignedNode = try fields.required("assigned_node", F.string)
        participatingNodes = try fields.required("participating_nodes", F.strings)
        parentID = try fields.optional("parent_id", F.int64)
        attempt = try fields.required("attempt", F.int)
        maxAttempts = try fields.required("max_attempts", F.int)
        priority = try fields.required("priority", F.int)
        runAfter = try fields.optional("run_after", F.date)
        timeoutSeconds = try fields.optional("timeout_seconds", F.int)
        leaseExpiresAt = try fields.optional("lease_expires_at", F.date)
        orderingKey = try fields.optional("ordering_key", F.string)
        idempotencyKey = try fields.optional("idempotency_key", F.string)
        opaqueID = try fields.optional("opaque_id", F.string)
        traceparent = try fields.optional("traceparent", F.string)
        result = try fields.optional("result", F.raw)
        error = try fields.optional("error", F.string)
        cancelRequested = try fields.required("cancel_requested", F.bool)
        abortable = try fields.required("abortable", F.bool)
        `internal` = try fields.required("internal", F.bool)
        progress = try fields.optional("progress", F.value)
        completeWhen = try fields.required("complete_when", F.value)
        concurrencyKey = try fields.optional("concurrency_key", F.string)
        concurrencyLimit = try fields.optional("concurrency_limit", F.int)
        waitingFor = try fields.optional("waiting_for", F.strings)
        scheduleID = try fields.optional("schedule_id", F.string)
        scheduleSlot = try fields.optional("schedule_slot", F.date)
        onFinish = try fields.optional("on_finish", F.value)
        followUpID = try fields.optional("follow_up_id", F.int64)
        participants = try fields.requiredArray("participants", ParticipantObject.read)
        createdAt = try fields.required("created_at", F.date)
        receivedAt = try fields.optional("received_at", F.date)
        finishedAt = try fields.optional("finished_at", F.date)
        updatedAt = try fields.required("updated_at", F.date)
    }
}

extension ParticipantObject: JSONReadable {
    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> ParticipantObject { try ParticipantObject(JSONFields(json)) }

    init(_ fields: JSONFields) throws(JSONUnreadable) {
        node = try fields.required("node", F.string)
        attempt = try fields.required("attempt", F.int)
        state = try fields.required("state", F.enumeration)
        result = try fields.optional("result", F.raw)
        error = try fields.optional("error", F.string)
        startedAt = try fields.optional("started_at", F.date)
        finishedAt = try fields.optional("finished_at", F.date)
        rollback = try fields.optional("rollback", F.value)
        decided = try fields.required("decided", F.bool)
    }
}

extension ClaimedTaskObject: JSONReadable {
    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> ClaimedTaskObject {
        let fields = try JSONFields(json)
        var claimed = ClaimedTaskObject(task: try TaskObject(fields), lease: try fields.required("lease", F.string),
                                        grants: try fields.required("grants", F.stringsByKey))
        claimed.traceparent = try fields.optional("attempt_traceparent", F.string)
        return claimed
    }
}

extension PollResponse: JSONReadable {
    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> PollResponse {
        let fields = try JSONFields(json)
        return PollResponse(tasks: try fields.requiredArray("tasks", ClaimedTaskObject.read),
                            cancel: try fields.requiredArray("cancel", F.int64))
    }
}

extension SubmitTaskRequest: JSONReadable {
    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> SubmitTaskRequest {
        let fields = try JSONFields(json)
        return SubmitTaskRequest(
            type: try fields.required("type", F.string), participatingNodes: try fields.required("participating_nodes", F.strings),
            payload: try fields.optional("payload", F.raw), priority: try fields.optional("priority", F.int),
            runAfter: try fields.optional("run_after", F.date), maxAttempts: try fields.optional("max_attempts", F.int),
            timeoutSeconds: try fields.optional("timeout_seconds", F.int), orderingKey: try fields.optional("ordering_key", F.string),
            assign: try fields.optional("assign", F.enumeration), affinity: try fields.optional("affinity", F.enumeration),
            parentID: try fields.optional("parent_id", F.int64), abortable: try fields.optional("abortable", F.bool),
            internal: try fields.optional("internal", F.bool), completeWhen: try fields.optional("complete_when", F.value),
            concurrencyKey: try fields.optional("concurrency_key", F.string),
            concurrencyLimit: try fields.optional("concurrency_limit", F.int), onLimit: try fields.optional("on_limit", F.enumeration),
            onOffline: try fields.optional("on_offline", F.enumeration), onFinish: try fields.optional("on_finish", F.value),
            idempotencyKey: try fields.optional("idempotency_key", F.string))
    }
}

extension SubmitBatchRequest: JSONReadable {
    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> SubmitBatchRequest {
        SubmitBatchRequest(tasks: try JSONFields(json).requiredArray("tasks", SubmitTaskRequest.read))
    }
}

extension StateReportRequest.Participant: JSONReadable {
    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> StateReportRequest.Participant {
        try StateReportRequest.Participant(JSONFields(json))
    }

    init(_ fields: JSONFields) throws(JSONUnreadable) {
        node = try fields.required("node", F.string)
        state = try fields.required("state", F.enumeration)
        result = try fields.optional("result", F.raw)
        error = try fields.optional("error", F.string)
        startedAt = try fields.optional("started_at", F.date)
        finishedAt = try fields.optional("finished_at", F.date)
        rollback = try fields.optional("rollback", ParticipantRollback.read)
        decided = try fields.optional("decided", F.bool)
    }
}

extension StateReportRequest: JSONReadable {
    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> StateReportRequest { try StateReportRequest(JSONFields(json)) }

    init(_ fields: JSONFields) throws(JSONUnreadable) {
        attempt = try fields.required("attempt", F.int)
        lease = try fields.required("lease", F.string)
        state = try fields.required("state", F.enumeration)
        result = try fields.optional("result", F.raw)
        error = try fields.optional("error", F.string)
        participants = try fields.optionalArray("participants", Participant.read)
        traceparent = try fields.optional("traceparent", F.string)
    }
}

extension StateReportBatchRequest: JSONReadable {
    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> StateReportBatchRequest {
        StateReportBatchRequest(reports: try JSONFields(json).requiredArray("reports") { (json) throws(JSONUnreadable) in
            let fields = try JSONFields(json)
            return Item(taskID: try fields.required("task_id", F.int64), report: try StateReportRequest(fields))
        })
    }
}

// MARK: - The agents' messages: reports, participant calls and their answers

extension StateReportRequest.Participant: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.fieldIfPresent("decided", decided) { $0.bool($1) }
            json.fieldIfPresent("error", error) { $0.string($1) }
            json.fieldIfPresent("finished_at", finishedAt) { $0.date($1) }
            json.field("node", node)
            json.fieldIfPresent("result", result) { $0.raw($1) }
            json.fieldIfPresent("rollback", rollback) { json, rollback in
                json.object { json in
                    json.fieldIfPresent("error", rollback.error) { $0.string($1) }
                    json.fieldIfPresent("result", rollback.result) { $0.value($1) }
                    json.field("state", rollback.state.rawValue)
                }
            }
            json.fieldIfPresent("started_at", startedAt) { $0.date($1) }
            json.field("state", state.rawValue)
        }
    }
}

extension StateReportRequest: JSONWritable {
    public func write(to json: inout JSONWriter) { write(to: &json, taskID: nil) }

    /// A batch item is the report with its `task_id` among its fields.
    func write(to json: inout JSONWriter, taskID: Int64?) {
        json.object { json in
            json.field("attempt", attempt)
            json.fieldIfPresent("error", error) { $0.string($1) }
            json.field("lease", lease)
            json.fieldIfPresent("participants", participants) { json, participants in json.array(participants) { $1.write(to: &$0) } }
            json.fieldIfPresent("result", result) { $0.raw($1) }
            json.field("state", state.rawValue)
            json.fieldIfPresent("task_id", taskID) { $0.integer($1) }
            json.fieldIfPresent("traceparent", traceparent) { $0.string($1) }
        }
    }
}

extension StateReportBatchRequest: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.key("reports")
            json.array(reports) { json, item in item.report.write(to: &json, taskID: item.taskID) }
        }
    }
}

extension ErrorBody.Detail: JSONWritable, JSONReadable {
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.field("code", code.rawValue)
            json.fieldIfPresent("field", field) { $0.string($1) }
            json.field("message", message)
        }
    }

    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> ErrorBody.Detail {
        let fields = try JSONFields(json)
        return ErrorBody.Detail(code: ErrorCode(rawValue: try fields.required("code", F.string)), message: try fields.required("message", F.string),
                                field: try fields.optional("field", F.string))
    }
}

extension StateReportBatchResponse: JSONWritable, JSONReadable {
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.key("results")
            json.array(results) { json, result in
                json.object { json in
                    json.fieldIfPresent("error", result.error) { $1.write(to: &$0) }
                    json.fieldIfPresent("state", result.state) { $0.string($1.rawValue) }
                    json.field("status", result.status)
                    json.field("task_id", result.taskID)
                }
            }
        }
    }

    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> StateReportBatchResponse {
        StateReportBatchResponse(results: try JSONFields(json).requiredArray("results") { (json) throws(JSONUnreadable) in
            let fields = try JSONFields(json)
            return Result(taskID: try fields.required("task_id", F.int64), status: try fields.required("status", F.int),
                          state: try fields.optional("state", F.enumeration), error: try fields.optional("error", ErrorBody.Detail.read))
        })
    }
}

extension ParticipantRequest: JSONWritable, JSONReadable {
    /// The body of a single call: `traceparent` travels as a header.
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.field("attempt", attempt)
            json.field("cluster_id", clusterID)
            json.field("initiator", initiator)
            json.field("payload", payload)
            json.field("task_id", taskID)
        }
    }

    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> ParticipantRequest {
        let fields = try JSONFields(json)
        return ParticipantRequest(taskID: try fields.required("task_id", F.int64), clusterID: try fields.required("cluster_id", F.string),
                                  attempt: try fields.required("attempt", F.int), initiator: try fields.required("initiator", F.string),
                                  payload: try fields.required("payload", F.raw))
    }
}

extension ParticipantCall: JSONWritable, JSONReadable {
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.field("attempt", attempt)
            json.field("cluster_id", clusterID)
            json.field("grant", grant)
            json.field("initiator", initiator)
            json.field("payload", payload)
            json.fieldIfPresent("rollback", rollback) { $0.bool($1) }
            json.field("task_id", taskID)
            json.fieldIfPresent("traceparent", traceparent) { $0.string($1) }
            json.field("type", type)
        }
    }

    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> ParticipantCall {
        let fields = try JSONFields(json)
        var call = ParticipantCall(
            type: try fields.required("type", F.string), rollback: false, grant: try fields.required("grant", F.string),
            request: ParticipantRequest(taskID: try fields.required("task_id", F.int64), clusterID: try fields.required("cluster_id", F.string),
                                        attempt: try fields.required("attempt", F.int), initiator: try fields.required("initiator", F.string),
                                        payload: try fields.required("payload", F.raw),
                                        traceparent: try fields.optional("traceparent", F.string)))
        call.rollback = try fields.optional("rollback", F.bool)
        return call
    }
}

extension ParticipantBatchRequest: JSONWritable, JSONReadable {
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.key("calls")
            json.array(calls) { $1.write(to: &$0) }
        }
    }

    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> ParticipantBatchRequest {
        ParticipantBatchRequest(calls: try JSONFields(json).requiredArray("calls", ParticipantCall.read))
    }
}

extension ParticipantBatchLine: JSONWritable, JSONReadable {
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.fieldIfPresent("error", error) { $1.write(to: &$0) }
            json.field("index", index)
            // A success always carries `result` (null included), as the single route's body does.
            if (200..<300).contains(status) { json.field("result", result) }
            json.field("status", status)
        }
    }

    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> ParticipantBatchLine {
        let fields = try JSONFields(json)
        return ParticipantBatchLine(index: try fields.required("index", F.int), status: try fields.required("status", F.int),
                                    result: try fields.optional("result", F.raw), error: try fields.optional("error", ErrorBody.Detail.read))
    }
}

extension SubmitTaskRequest: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.fieldIfPresent("abortable", abortable) { $0.bool($1) }
            json.fieldIfPresent("affinity", affinity) { $0.string($1.rawValue) }
            json.fieldIfPresent("assign", assign) { $0.string($1.rawValue) }
            json.fieldIfPresent("complete_when", completeWhen) { $0.value($1) }
            json.fieldIfPresent("concurrency_key", concurrencyKey) { $0.string($1) }
            json.fieldIfPresent("concurrency_limit", concurrencyLimit) { $0.integer(Int64($1)) }
            json.fieldIfPresent("idempotency_key", idempotencyKey) { $0.string($1) }
            json.fieldIfPresent("internal", `internal`) { $0.bool($1) }
            json.fieldIfPresent("max_attempts", maxAttempts) { $0.integer(Int64($1)) }
            json.fieldIfPresent("on_finish", onFinish) { $0.value($1) }
            json.fieldIfPresent("on_limit", onLimit) { $0.string($1.rawValue) }
            json.fieldIfPresent("on_offline", onOffline) { $0.string($1.rawValue) }
            json.fieldIfPresent("ordering_key", orderingKey) { $0.string($1) }
            json.fieldIfPresent("parent_id", parentID) { $0.integer($1) }
            json.field("participating_nodes", participatingNodes)
            json.fieldIfPresent("payload", payload) { $0.raw($1) }
            json.fieldIfPresent("priority", priority) { $0.integer(Int64($1)) }
            json.fieldIfPresent("run_after", runAfter) { $0.date($1) }
            json.fieldIfPresent("timeout_seconds", timeoutSeconds) { $0.integer(Int64($1)) }
            json.field("type", type)
        }
    }
}

extension SubmitBatchRequest: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.key("tasks")
            json.array(tasks) { $1.write(to: &$0) }
        }
    }
}
