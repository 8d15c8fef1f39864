import Foundation
import NIOCore
import Synchronization
import TaskyardDomain
import TaskyardSecurity

/// What this node has run for each (task, attempt, verb) a grant allowed, kept until that grant expires: a
/// grant runs once, and a repeat — a replayed request, a retried one, the same call twice — gets the answer
/// the first run gave (waiting for it while it runs) without running the handler again.
///
/// Memory is bounded: at most `capacity` runs are remembered. Past that the oldest are forgotten, and from
/// then on a grant issued no later than the newest forgotten one is refused (it might be a forgotten run's):
/// honest calls arrive within moments of their grant's issue, far newer than anything forgotten. Results
/// are kept up to `resultBytes` in all; a repeat of a run whose result was not kept is told so (409).
final class RunLedger: Sendable {
    struct Key: Hashable, Sendable {
        let taskID: Int64
        let attempt: Int
        let verb: Grant.Verb
    }

    /// What a run is remembered by: its key, and the issue and expiry of the grant that allows it.
    struct Use: Sendable {
        let key: Key
        let issuedAt: Int64
        let expiresAt: Int64

        init(_ grant: Grant) {
            key = Key(taskID: grant.taskID, attempt: grant.attempt, verb: grant.verb)
            issuedAt = grant.issuedAt
            expiresAt = grant.expiresAt
        }

        /// This node's own part of a fan-out it initiates, run in-process: its grant came with the claim
        /// and lives as long as the claim's lease plus `callTime` (the participant timeout, or the task's
        /// shorter one) — known without reading the grant.
        init(ownPartOf taskID: Int64, attempt: Int, leaseExpiresAt: Date, callTime: Duration) {
            key = Key(taskID: taskID, attempt: attempt, verb: .run)
            issuedAt = Int64(Date().timeIntervalSince1970)
            expiresAt = Int64(leaseExpiresAt.timeIntervalSince1970.rounded(.up)) + callTime.components.seconds + 1
        }
    }

    typealias Answer = ParticipantEndpoint.Answer

    private enum Entry {
        case running(waiters: [CheckedContinuation<Answer, Never>])
        case done(Answer, bytes: Int)
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        /// Keys in the order they came, with their grants' expiry and issue: forgotten from the front.
        var order = CircularBuffer<(key: Key, expiresAt: Int64, issuedAt: Int64)>()
        var keptResultBytes = 0
        /// Grants issued at or before this (seconds since 1970) are refused: runs that old were forgotten.
        var forgottenUpTo: Int64 = .min
    }

    private let state = Mutex(State())
    let capacity: Int
    let resultBytes: Int

    init(capacity: Int = 100_000, resultBytes: Int = 16 << 20) {
        self.capacity = capacity
        self.resultBytes = resultBytes
    }

    /// What the call `use` stands for answers: `run`'s answer the first time, the recorded one after.
    func once(_ use: Use, now: Int64 = Int64(Date().timeIntervalSince1970), run: () async -> Answer) async -> Answer {
        let key = use.key
        enum Next {
            case run
            case answer(Answer)
            case wait
        }
        let next = state.withLock { state -> Next in
            forgetExpired(&state, now: now)
            switch state.entries[key] {
            case .done(let answer, _)?: return .answer(answer)
            case .running?: return .wait
            case nil:
                if use.issuedAt <= state.forgottenUpTo {
                    return .answer(.failed(status: 403, code: .forbidden,
                                           message: "the grant is older than the runs this node remembers; it runs nothing"))
                }
                state.entries[key] = .running(waiters: [])
                state.order.append((key, use.expiresAt, use.issuedAt))
                while state.order.count > capacity, let oldest = state.order.first, forget(&state, oldest.key) {
                    state.order.removeFirst()
                    state.forgottenUpTo = max(state.forgottenUpTo, oldest.issuedAt)
                }
                return .run
            }
        }
        switch next {
        case .answer(let answer):
            return answer
        case .wait:
            return await withCheckedContinuation { continuation in
                let recorded = state.withLock { state -> Answer? in
                    switch state.entries[key] {
                    case .running(var waiters)?:
                        waiters.append(continuation)
                        state.entries[key] = .running(waiters: waiters)
                        return nil
                    case .done(let answer, _)?:
                        return answer
                    case nil:
                        return .failed(status: 403, code: .forbidden, message: "the grant has expired")
                    }
                }
                if let recorded { continuation.resume(returning: recorded) }
            }
        case .run:
            let answer = await run()
            let waiters = state.withLock { state -> [CheckedContinuation<Answer, Never>] in
                guard case .running(let waiters)? = state.entries[key] else { return [] }
                let bytes = Self.estimatedBytes(of: answer)
                if state.keptResultBytes + bytes <= resultBytes {
                    state.entries[key] = .done(answer, bytes: bytes)
                    state.keptResultBytes += bytes
                } else {
                    state.entries[key] = .done(.failed(status: 409, code: .alreadyRan,
                                                       message: "node ran this call already; its answer is no longer kept"), bytes: 0)
                }
                return waiters
            }
            for waiter in waiters { waiter.resume(returning: answer) }
            return answer
        }
    }

    /// Seconds past a grant's expiry that its run is remembered: more than `GrantVerifier`'s leeway.
    static let expiryMargin: Int64 = 60

    /// Runs remembered now (running or done).
    var count: Int { state.withLock { $0.entries.count } }

    private func forgetExpired(_ state: inout State, now: Int64) {
        // Kept past the expiry by more than the leeway a participant gives a grant's clock. Forgetting a run
        // still going is for later: its waiters need its answer.
        while let oldest = state.order.first, oldest.expiresAt + Self.expiryMargin < now, forget(&state, oldest.key) {
            state.order.removeFirst()
        }
        if state.entries.isEmpty, state.order.isEmpty { state.entries = [:] }
    }

    /// Forgets a finished run; false (and nothing forgotten) while it runs.
    private func forget(_ state: inout State, _ key: Key) -> Bool {
        switch state.entries[key] {
        case .running?: return false
        case .done(_, let bytes)?:
            state.keptResultBytes -= bytes
            state.entries[key] = nil
            return true
        case nil: return true
        }
    }

    /// About what an answer holds in memory: its result's or message's size.
    static func estimatedBytes(of answer: Answer) -> Int {
        switch answer {
        case .completed(let result): 64 + (result?.bytes.count ?? 0)
        case .failed(_, let code, let message): 64 + code.rawValue.utf8.count + message.utf8.count
        }
    }

}

/// At most `limit` handler runs on this node at once (`--max-handler-runs`); the calls past it wait their
/// turn, in order. A caller cancelled while waiting leaves the line.
final class HandlerSlots: Sendable {
    private struct State {
        var free: Int
        var waiting: [(id: Int, continuation: CheckedContinuation<Bool, Never>)] = []
        var nextID = 0
    }

    private let state: Mutex<State>
    let limit: Int

    init(limit: Int) {
        self.limit = limit
        state = Mutex(State(free: limit))
    }

    /// Runs `body` in a slot; nil when cancelled before one came free.
    func withSlot<T: Sendable>(_ body: () async -> T) async -> T? {
        guard await acquire() else { return nil }
        defer { release() }
        return await body()
    }

    private func acquire() async -> Bool {
        let id = state.withLock { state -> Int? in
            if state.free > 0 {
                state.free -= 1
                return nil
            }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return true }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                // Looked at again under the lock that `release` takes: a slot freed since is taken now.
                let now = state.withLock { state -> Bool? in
                    if state.free > 0 {
                        state.free -= 1
                        return true
                    }
                    if Task.isCancelled { return false }
                    state.waiting.append((id, continuation))
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
                guard let index = state.waiting.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiting.remove(at: index).continuation
            }
            waiter?.resume(returning: false)
        }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            if state.waiting.isEmpty {
                state.free += 1
                return nil
            }
            return state.waiting.removeFirst().continuation
        }
        next?.resume(returning: true)
    }
}
