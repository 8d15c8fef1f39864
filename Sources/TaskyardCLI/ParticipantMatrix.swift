import Foundation
import TaskyardAPI
import TaskyardDomain

/// The task × participant matrix: one row per participating node, its part in the task as the task
/// object's `participants` says — waiting while queued, running while the attempt is out, then its outcome.
struct ParticipantMatrix {
    struct Row: Equatable {
        var node: String
        var state: String
        var attempt: Int
        var started: Date?
        var finished: Date?
        var outcome: String
    }

    let task: TaskObject
    let rows: [Row]

    init(_ detail: TaskDetail) { self.init(detail.task) }

    init(_ task: TaskObject) {
        self.task = task
        rows = task.participants.map { participant in
            let state: String = switch participant.state {
            case .pending: "waiting"
            case .running: task.cancelRequested ? "stopping" : "running"
            default: participant.state.rawValue
            }
            return Row(node: participant.node, state: state, attempt: participant.attempt, started: participant.startedAt,
                       finished: participant.finishedAt, outcome: ParticipantMatrix.outcome(of: participant))
        }
    }

    /// A participant's result or error in one cell, with its rollback where one ran.
    static func outcome(of participant: ParticipantObject) -> String {
        var text = participant.error ?? (participant.result.map(compact) ?? "")
        if let rollback = participant.rollback, case .string(let state)? = rollback["state"] {
            text += " (rollback \(state)"
            if case .string(let error)? = rollback["error"] { text += ": \(error)" }
            text += ")"
        }
        return text
    }

    /// `complete_when` as a person reads it: all, any, quorum, at least 2.
    static func policy(_ json: JSONValue) -> String {
        if let policy = try? CompletionPolicy(json: json) {
            if case .atLeast(let count) = policy { return "at least \(count)" }
            return policy.name
        }
        return "all"
    }

    var lines: [String] {
        var header = "Task \(task.id)  \(task.type)  \(task.state.rawValue.uppercased())  attempt \(task.attempt) of \(task.maxAttempts)"
        if task.completeWhen != "all" { header += "  complete when \(Self.policy(task.completeWhen))" }
        if let progress = ProgressBar(task.progress), !task.state.isTerminal { header += "  \(progress.text)" }
        if let waiting = task.waitingFor { header += "  waiting for \(waiting.joined(separator: ", "))" }
        var table = Table("Node", "State", "Attempt", "Started", "Finished", "Result / error")
        for row in rows {
            table.add(row.node, row.state, String(row.attempt), shortTime(row.started), shortTime(row.finished), row.outcome)
        }
        var lines = [header] + table.rendered.split(separator: "\n").map(String.init)
        if let error = task.error, task.state.isTerminal { lines.append("error: \(error)") }
        return lines
    }
}
