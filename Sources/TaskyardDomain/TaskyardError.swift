/// A request the domain or the store refuses. The HTTP layer turns `kind` into a status
/// (invalid 422, notFound 404, conflict 409) and `code`, `message` and `field` into the API's error body.
public struct TaskyardError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// Well-formed input that breaks a rule.
        case invalid
        /// An unknown cluster, node or task.
        case notFound
        /// The task is not in a state that allows the request (stale attempt, already finished, …).
        case conflict
    }

    public var kind: Kind
    /// snake_case, stable: programs match on it.
    public var code: ErrorCode
    /// For a person.
    public var message: String
    /// JSON path of the field at fault, when one is.
    public var field: String?

    public init(_ kind: Kind, code: ErrorCode, message: String, field: String? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        self.field = field
    }

    public static func invalid(_ field: String, _ message: String, code: ErrorCode = .invalidField) -> TaskyardError {
        TaskyardError(.invalid, code: code, message: "\(field): \(message)", field: field)
    }

    public var description: String { "\(kind) \(code): \(message)" }
}
