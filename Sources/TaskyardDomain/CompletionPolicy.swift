/// When a fan-out counts as done (`complete_when`): when all of its participants succeeded (the default),
/// any one, a strict majority (`quorum`), or at least N. The initiator decides as outcomes arrive: met, the
/// task is completed and the participants still running are stopped ("not needed"); no longer reachable,
/// it fails.
public enum CompletionPolicy: Sendable, Hashable {
    case all
    case any
    case quorum
    case atLeast(Int)

    /// Successes needed among `participants`.
    public func required(of participants: Int) -> Int {
        switch self {
        case .all: participants
        case .any: min(1, participants)
        case .quorum: participants / 2 + 1
        case .atLeast(let count): count
        }
    }

    /// What `outcomes` settle: met once `required` succeeded, failed once too few can still succeed.
    public enum Verdict: Sendable, Equatable {
        case undecided
        case met
        case unreachable
    }

    public func verdict(succeeded: Int, failed: Int, of participants: Int) -> Verdict {
        let required = required(of: participants)
        if succeeded >= required { return .met }
        if participants - failed < required { return .unreachable }
        return .undecided
    }

    /// As the API writes it: `"all"`, `"any"`, `"quorum"` or `{"at_least": N}`.
    public var json: JSONValue {
        switch self {
        case .all: "all"
        case .any: "any"
        case .quorum: "quorum"
        case .atLeast(let count): ["at_least": .integer(Int64(count))]
        }
    }

    /// As a message names it: `all`, `any`, `quorum`, `at_least 2`.
    public var name: String {
        if case .atLeast(let count) = self { return "at_least \(count)" }
        return stored
    }

    /// As the `tasks.complete_when` column holds it: `all`, `any`, `quorum` or the number N of `at_least`.
    public var stored: String {
        switch self {
        case .all: "all"
        case .any: "any"
        case .quorum: "quorum"
        case .atLeast(let count): String(count)
        }
    }

    public init?(stored: String) {
        switch stored {
        case "all": self = .all
        case "any": self = .any
        case "quorum": self = .quorum
        default:
            guard let count = Int(stored), count >= 1 else { return nil }
            self = .atLeast(count)
        }
    }

    /// The policy a request names, or why not: `field` is the request's field, for the error.
    public init(json: JSONValue, field: String = "complete_when") throws(TaskyardError) {
        switch json {
        case .string("all"): self = .all
        case .string("any"): self = .any
        case .string("quorum"): self = .quorum
        case .object(let members) where members.count == 1:
            // A whole number, written 2 or 2.0 (as every integer field of the API may be).
            let count: Int64? = switch members["at_least"] {
            case .integer(let count)?: count
            case .double(let value)? where value == value.rounded() && abs(value) < 1e6: Int64(value)
            default: nil
            }
            guard let count, count >= 1, count <= Int64(TaskSubmission.Limits.participatingNodes.upperBound) else {
                throw .invalid(field + ".at_least", "must be a whole number from 1 to the number of participating nodes")
            }
            self = .atLeast(Int(count))
        default:
            throw .invalid(field, #"must be "all", "any", "quorum" or {"at_least": N}"#)
        }
    }

    /// Checked against the task's participants: `at_least` may not ask for more than there are.
    public func validate(participants: Int, field: String = "complete_when") throws(TaskyardError) {
        if case .atLeast(let count) = self, count > participants {
            throw .invalid(field + ".at_least", "asks for \(count) successes of \(participants) participating node\(participants == 1 ? "" : "s")")
        }
    }
}
