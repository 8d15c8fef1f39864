import Foundation
import TaskyardAPI
import TaskyardDomain

/// The task × participant matrix: one row per participating node, what its part of the current attempt
/// is. A node's own outcome is known once the attempt is reported (its outcome row); until then every
/// node's part stands as the task does — waiting while queued, running while received.
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

    init(_ detail: TaskDetail) {
        task = detail.task
        let current = detail.children.filter { $0.attempt == detail.task.attempt && $0.type == detail.task.type }
        let running: String = switch detail.task.state {
        case .queued: "waiting"
        case .received: detail.task.cancelRequested ? "stopping" : "running"
        default: detail.task.state.rawValue
        }
        rows = detail.task.participatingNodes.map { node in
            if let outcome = current.last(where: { $0.assignedNode == node }) {
                return Row(node: node, state: outcome.state.rawValue, attempt: outcome.attempt, started: outcome.receivedAt,
                           finished: outcome.finishedAt, outcome: outcome.error ?? compact(outcome.result))
            }
            return Row(node: node, state: running, attempt: detail.task.attempt, started: detail.task.receivedAt,
                       finished: nil, outcome: "")
        }
    }

    var lines: [String] {
        var header = "Task \(task.id)  \(task.type)  \(task.state.rawValue.uppercased())  attempt \(task.attempt) of \(task.maxAttempts)"
        if let progress = ProgressBar(task.progress), !task.state.isTerminal { header += "  \(progress.text)" }
        var table = Table("Node", "State", "Attempt", "Started", "Finished", "Result / error")
        for row in rows {
            table.add(row.node, row.state, String(row.attempt), shortTime(row.started), shortTime(row.finished), row.outcome)
        }
        var lines = [header] + table.rendered.split(separator: "\n").map(String.init)
        if let error = task.error, task.state.isTerminal { lines.append("error: \(error)") }
        return lines
    }
}
