import Foundation
import TaskyardAPI
import TaskyardDomain

/// A task tree as indented lines: `├─ 43 volume_create completed on n2 (attempt 1)`.
struct TreeDrawing {
    let lines: [String]

    init(_ tasks: [TaskObject]) {
        guard let root = tasks.first else {
            lines = []
            return
        }
        let children = Dictionary(grouping: tasks.dropFirst(), by: { $0.parentID ?? 0 })
        func label(_ task: TaskObject) -> String {
            var text = "\(task.id) \(task.type) \(task.state.rawValue) on \(task.assignedNode) (attempt \(task.attempt))"
            if task.cancelRequested && !task.state.isTerminal { text += ", cancel requested" }
            // Its participants once it has run: `[n1 completed, n2 failed]`.
            if task.participants.contains(where: { $0.state != .pending }) {
                text += " [" + task.participants.map { "\($0.node) \($0.state.rawValue)" }.joined(separator: ", ") + "]"
            }
            if let error = task.error { text += ": \(error)" }
            return text
        }
        var lines = [label(root)]
        func draw(_ parent: Int64, prefix: String) {
            let kids = (children[parent] ?? []).sorted { $0.id < $1.id }
            for (index, child) in kids.enumerated() {
                let last = index == kids.count - 1
                lines.append(prefix + (last ? "└─ " : "├─ ") + label(child))
                draw(child.id, prefix: prefix + (last ? "   " : "│  "))
            }
        }
        draw(root.id, prefix: "")
        self.lines = lines
    }
}

/// `[########------]  2/3 participants` from a task's progress object.
struct ProgressBar {
    let completed: Double
    let total: Double
    let units: String?

    init?(_ progress: JSONValue?) {
        func number(_ value: JSONValue?) -> Double? {
            switch value {
            case .integer(let number)?: Double(number)
            case .double(let number)?: number
            default: nil
            }
        }
        guard let progress, let completed = number(progress["completed"]), let total = number(progress["total"]), total > 0 else {
            return nil
        }
        self.completed = min(completed, total)
        self.total = total
        if case .string(let units)? = progress["units"] { self.units = units } else { units = nil }
    }

    var text: String {
        let width = 20
        let filled = Int((completed / total * Double(width)).rounded(.down))
        let amount = completed == completed.rounded() && total == total.rounded()
            ? "\(Int(completed))/\(Int(total))" : String(format: "%.1f/%.1f", completed, total)
        return "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]  "
            + amount + (units.map { " \($0)" } ?? "")
    }
}
