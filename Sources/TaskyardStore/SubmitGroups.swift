import Synchronization
import TaskyardDomain

/// Lets single submits that arrive while another is being written share one statement and one commit.
///
/// A commit waits for its WAL flush; a submit per commit made one-by-one POSTs cost a flush each. The
/// first submit runs at once, alone, so an idle server adds no wait. The ones that arrive while it runs
/// gather, and when it ends the first of them runs them all as the next group, in its own request's task:
/// no background task, and every group is written by a request that waits for it. The same pattern as
/// the wake-up publisher and the agents' participant batches: one on its way, the rest gather behind it.
final class SubmitGroups: Sendable {
    struct Item: Sendable {
        var cluster: String
        var submission: TaskSubmission
    }

    typealias Outcome = Result<(task: TaskRecord, created: Bool), any Error>

    /// What a waiting submit is told: its outcome, or that it writes the next group (itself first).
    enum Turn: Sendable {
        case done(Outcome)
        case lead([Waiter])
    }

    struct Waiter: Sendable {
        var item: Item
        var continuation: CheckedContinuation<Turn, Never>
    }

    private struct State {
        var running = false
        var waiting: [Waiter] = []
    }

    /// The most submits one group writes; the rest wait for the next.
    let maximumGroupSize: Int
    private let state = Mutex(State())

    init(maximumGroupSize: Int) {
        self.maximumGroupSize = maximumGroupSize
    }

    /// Submits `item` in a group, `write` writing each group: one outcome per item, in order.
    func submit(_ item: Item, write: @Sendable ([Item]) async -> [Outcome]) async throws -> (task: TaskRecord, created: Bool) {
        // Alone (the idle case): lead at once, without suspending.
        let leadsAtOnce = state.withLock { state -> Bool in
            guard !state.running else { return false }
            state.running = true
            return true
        }
        let turn: Turn
        if leadsAtOnce {
            turn = .lead([])
        } else {
            turn = await withCheckedContinuation { continuation in
                // The group in flight may have ended since the look above: then lead.
                let leads = state.withLock { state in
                    if state.running {
                        state.waiting.append(Waiter(item: item, continuation: continuation))
                        return false
                    }
                    state.running = true
                    return true
                }
                if leads { continuation.resume(returning: .lead([])) }
            }
        }
        switch turn {
        case .done(let outcome):
            return try outcome.get()
        case .lead(let others):
            let outcomes = await write([item] + others.map(\.item))
            for (waiter, outcome) in zip(others, outcomes.dropFirst()) {
                waiter.continuation.resume(returning: .done(outcome))
            }
            handOver()
            return try outcomes[0].get()
        }
    }

    /// Passes the writing on to the first submit that gathered, with the others of its group; or stops.
    private func handOver() {
        let next: (leader: Waiter, others: [Waiter])? = state.withLock { state in
            guard !state.waiting.isEmpty else {
                state.running = false
                return nil
            }
            let group = Array(state.waiting.prefix(maximumGroupSize))
            state.waiting.removeFirst(group.count)
            return (group[0], Array(group.dropFirst()))
        }
        if let next { next.leader.continuation.resume(returning: .lead(next.others)) }
    }
}
