/// A follow-up task (`on_finish`): submitted on `node`, of `type`, in the transaction that finishes the task
/// that names it, with what that task ended with as its payload (`task_id`, `type`, `state`, `result`,
/// `error`, `payload`).
public struct FollowUp: Sendable, Hashable {
    public var type: String
    public var node: String

    public init(type: String, node: String) {
        self.type = type
        self.node = node
    }

    /// `{"type": …, "node": …}` as a request gives it; 422 naming the field for anything else.
    public init(json: JSONValue, field: String) throws(TaskyardError) {
        guard case .object(let members) = json else { throw .invalid(field, "must be an object {\"type\", \"node\"}") }
        if let unknown = members.keys.sorted().first(where: { $0 != "type" && $0 != "node" }) {
            throw .invalid("\(field).\(unknown)", "is not a field of on_finish (type, node)")
        }
        guard case .string(let type)? = members["type"] else { throw .invalid(field + ".type", "must be a task type") }
        guard case .string(let node)? = members["node"] else { throw .invalid(field + ".node", "must be a node id") }
        self.init(type: type, node: node)
    }

    public func validate(field: String) throws(TaskyardError) {
        try Identifier.validateTaskType(type, field: field + ".type")
        try Identifier.validate(node, field: field + ".node")
    }

    public var json: JSONValue { .object(["type": .string(type), "node": .string(node)]) }
}
