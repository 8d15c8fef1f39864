import Foundation

/// A request to run a task: the body of `POST …/tasks` plus its headers.
public struct TaskSubmission: Sendable, Hashable {
    public var type: String
    public var participatingNodes: [String]
    public var payload: RawJSON
    public var priority: Int
    public var runAfter: Date?
    /// nil: the server's default for the type.
    public var maxAttempts: Int?
    public var timeoutSeconds: Int?
    public var orderingKey: String?
    public var assign: AssignPolicy
    public var affinity: Affinity
    public var parentID: Int64?
    public var abortable: Bool
    public var isInternal: Bool
    /// When the fan-out counts as done (`complete_when`). Default: all participants succeeded.
    public var completeWhen: CompletionPolicy
    /// At most so many received tasks of this key at once (`concurrency_key`, `concurrency_limit`, `on_limit`).
    public var concurrency: ConcurrencyKey?
    /// While a participant is offline: wait for it, or fail at once.
    public var onOffline: OfflinePolicy
    /// A task to submit when this one finishes (`on_finish`).
    public var onFinish: FollowUp?
    /// The schedule and slot it is submitted for (by the maintenance leader, never by a request).
    public var schedule: ScheduleSlot?
    /// From the `Idempotency-Key` header.
    public var idempotencyKey: String?
    /// From the `X-Opaque-Id` header.
    public var opaqueID: String?
    /// From the W3C `traceparent` header: passed on to participant calls and handlers.
    public var traceparent: String?

    public init(type: String, participatingNodes: [String], payload: RawJSON = .emptyObject, priority: Int = 0,
                runAfter: Date? = nil, maxAttempts: Int? = nil, timeoutSeconds: Int? = nil,
                orderingKey: String? = nil, assign: AssignPolicy = .first, affinity: Affinity = .any,
                parentID: Int64? = nil, abortable: Bool = true, isInternal: Bool = false,
                completeWhen: CompletionPolicy = .all, concurrency: ConcurrencyKey? = nil, onOffline: OfflinePolicy = .wait,
                onFinish: FollowUp? = nil, schedule: ScheduleSlot? = nil, idempotencyKey: String? = nil, opaqueID: String? = nil, traceparent: String? = nil) {
        self.type = type
        self.participatingNodes = participatingNodes
        self.payload = payload
        self.priority = priority
        self.runAfter = runAfter
        self.maxAttempts = maxAttempts
        self.timeoutSeconds = timeoutSeconds
        self.orderingKey = orderingKey
        self.assign = assign
        self.affinity = affinity
        self.parentID = parentID
        self.abortable = abortable
        self.isInternal = isInternal
        self.completeWhen = completeWhen
        self.concurrency = concurrency
        self.onOffline = onOffline
        self.onFinish = onFinish
        self.schedule = schedule
        self.idempotencyKey = idempotencyKey
        self.opaqueID = opaqueID
        self.traceparent = traceparent
    }

    /// What makes two requests the same for an `Idempotency-Key`: every field of the body, as given (an
    /// omitted field and its default are the same request). Headers other than the key are not part of it.
    public var requestIdentity: JSONValue {
        var identity: [String: JSONValue] = [
            "type": .string(type), "participating_nodes": .array(participatingNodes.map(JSONValue.string)),
            "payload": payload.value, "priority": .integer(Int64(priority)), "assign": .string(assign.rawValue),
            "affinity": .string(affinity.rawValue), "abortable": .bool(abortable), "internal": .bool(isInternal),
        ]
        if let runAfter { identity["run_after"] = .double(runAfter.timeIntervalSince1970) }
        if let maxAttempts { identity["max_attempts"] = .integer(Int64(maxAttempts)) }
        if let timeoutSeconds { identity["timeout_seconds"] = .integer(Int64(timeoutSeconds)) }
        if let orderingKey { identity["ordering_key"] = .string(orderingKey) }
        if let parentID { identity["parent_id"] = .integer(parentID) }
        if completeWhen != .all { identity["complete_when"] = completeWhen.json }
        if let concurrency {
            identity["concurrency_key"] = .string(concurrency.key)
            identity["concurrency_limit"] = .integer(Int64(concurrency.limit))
            identity["on_limit"] = .string(concurrency.onLimit.rawValue)
        }
        if onOffline != .wait { identity["on_offline"] = .string(onOffline.rawValue) }
        if let onFinish { identity["on_finish"] = onFinish.json }
        return .object(identity)
    }

    /// `X-Opaque-Id`, stored with a task or an event.
    public static func validateOpaqueID(_ opaqueID: String, field: String = "X-Opaque-Id") throws(TaskyardError) {
        guard Limits.opaqueIDLength.contains(opaqueID.unicodeScalars.count) else { throw .invalid(field, "must be 1–1024 characters") }
        try InputLimits.checkNoNUL(opaqueID, field: field)
        try checkNoEdgeWhiteSpace(opaqueID, field: field)
    }

    /// Keys that may come as HTTP headers must not start or end with a space or tab: a header loses them on
    /// the way (HTTP trims field values), so the same key would mean one thing in a body and another in a header.
    static func checkNoEdgeWhiteSpace(_ value: String, field: String) throws(TaskyardError) {
        let edges: Set<Unicode.Scalar> = [" ", "\t"]
        guard let first = value.unicodeScalars.first, let last = value.unicodeScalars.last,
              !edges.contains(first), !edges.contains(last) else {
            throw .invalid(field, "must not start or end with a space or tab")
        }
    }

    /// A W3C trace context `traceparent`: `version-traceid-parentid-flags` in lowercase hex, version 00 exactly
    /// so; a later version may append fields after a dash. Version ff and all-zero ids are invalid.
    public static func validateTraceparent(_ value: String, field: String = "traceparent") throws(TaskyardError) {
        let bytes = Array(value.utf8)
        func isHex(_ range: Range<Int>) -> Bool {
            bytes[range].allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
        }
        func isZero(_ range: Range<Int>) -> Bool { bytes[range].allSatisfy { $0 == 48 } }
        let shaped = bytes.count >= 55 && bytes.count <= 512 && bytes[2] == 45 && bytes[35] == 45 && bytes[52] == 45
            && isHex(0..<2) && isHex(3..<35) && isHex(36..<52) && isHex(53..<55)
        guard shaped, !(bytes[0] == 102 && bytes[1] == 102), !isZero(3..<35), !isZero(36..<52),
              bytes.count == 55 || (!isZero(0..<2) && bytes[55] == 45)
        else {
            throw .invalid(field, "must be a W3C trace context such as 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        }
    }

    public enum Limits {
        public static let participatingNodes = 1...256
        public static let maxAttempts = 1...100
        public static let priority = Int(Int32.min)...Int(Int32.max)
        /// One week: a task that needs longer should report progress and be split.
        public static let timeoutSeconds = 1...604_800
        public static let keyLength = 1...255
        public static let opaqueIDLength = 1...1024
        public static let defaultMaxAttempts = 3
    }

    /// Checks every rule that needs no database. `prefix` is the JSON path of this request in its body
    /// (`tasks[3].` in a batch) so that errors name the exact field.
    public func validate(fieldPrefix prefix: String = "", limits: InputLimits = .default) throws(TaskyardError) {
        try Identifier.validateTaskType(type, field: prefix + "type")
        guard Limits.participatingNodes.contains(participatingNodes.count) else {
            throw .invalid(prefix + "participating_nodes",
                           "must list between 1 and \(Limits.participatingNodes.upperBound) nodes")
        }
        var seen = Set<String>()
        for (index, node) in participatingNodes.enumerated() {
            try Identifier.validate(node, field: "\(prefix)participating_nodes[\(index)]")
            guard seen.insert(node).inserted else {
                throw .invalid("\(prefix)participating_nodes[\(index)]", "node \(node) is listed twice")
            }
        }
        try completeWhen.validate(participants: participatingNodes.count, field: prefix + "complete_when")
        try concurrency?.validate(fieldPrefix: prefix)
        try onFinish?.validate(field: prefix + "on_finish")
        guard payload.isObject else { throw .invalid(prefix + "payload", "must be a JSON object") }
        try limits.check(payload, field: prefix + "payload", bytes: limits.payloadBytes)
        guard Limits.priority.contains(priority) else {
            throw .invalid(prefix + "priority", "must be a 32-bit integer")
        }
        if let maxAttempts, !Limits.maxAttempts.contains(maxAttempts) {
            throw .invalid(prefix + "max_attempts", "must be between 1 and \(Limits.maxAttempts.upperBound)")
        }
        if let timeoutSeconds, !Limits.timeoutSeconds.contains(timeoutSeconds) {
            throw .invalid(prefix + "timeout_seconds", "must be between 1 and \(Limits.timeoutSeconds.upperBound)")
        }
        if let orderingKey {
            guard Limits.keyLength.contains(orderingKey.unicodeScalars.count) else {
                throw .invalid(prefix + "ordering_key", "must be 1–255 characters")
            }
            try InputLimits.checkNoNUL(orderingKey, field: prefix + "ordering_key")
        }
        if let idempotencyKey {
            let field = prefix.isEmpty ? "Idempotency-Key" : prefix + "idempotency_key"
            guard Limits.keyLength.contains(idempotencyKey.unicodeScalars.count) else { throw .invalid(field, "must be 1–255 characters") }
            try InputLimits.checkNoNUL(idempotencyKey, field: field)
            try Self.checkNoEdgeWhiteSpace(idempotencyKey, field: field)
        }
        if let opaqueID { try Self.validateOpaqueID(opaqueID) }
        if let traceparent { try Self.validateTraceparent(traceparent) }
        if let runAfter { try DateRange.check(runAfter, field: prefix + "run_after") }
        if let parentID, parentID <= 0 {
            throw .invalid(prefix + "parent_id", "must be a positive task id")
        }
    }
}
