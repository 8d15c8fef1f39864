/// Where a task is in its life (Kadalu's Queued, Received, Completed, Failed, plus Cancelled).
public enum TaskState: String, Sendable, Hashable, CaseIterable, Codable {
    case queued, received, completed, failed, cancelled

    /// A terminal task never changes state again, except through an explicit retry.
    public var isTerminal: Bool {
        switch self {
        case .queued, .received: false
        case .completed, .failed, .cancelled: true
        }
    }

    public static let terminal: [TaskState] = allCases.filter(\.isTerminal)
}
