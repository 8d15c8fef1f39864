import Foundation
import Synchronization
import TaskyardAPI
import TaskyardClient
import TaskyardDomain

/// Why the agent stops a task it holds.
enum StopReason: Sendable, Equatable {
    /// A client cancelled it: stop the participants and report `cancelled`.
    case cancelRequested
    /// The server says another attempt owns it now: stop, report nothing.
    case lost
    /// The agent is shutting down past its grace period: stop, report nothing (the lease expires).
    case abandoned
    /// The attempt ran past the task's `timeout_seconds`: stop the participants, report it failed.
    case timedOut(seconds: Int)
}

/// The tasks this agent holds as initiator, with what heartbeats need to renew their leases.
final class HeldTasks: Sendable {
    private struct Entry {
        let attempt: Int
        /// The claim's secret: heartbeats and the report carry it.
        let lease: String
        /// The fan-out waiting for a stop (`stopped`), resumed by `cancel`.
        var stopWaiter: CheckedContinuation<Void, Never>?
        /// The fan-out stopped waiting (it ended first).
        var stopWaitEnded = false
        var stop: StopReason?
        var progress: TaskProgress?
        /// Participants whose call has ended, whatever its outcome.
        var participantsDone = 0
        /// The fan-out is over and its report is on its way: the task is still held (its lease renewed)
        /// but no longer takes a slot.
        var reporting = false
        /// When `timeout_seconds` runs out for this attempt: the agent's sweep stops it then.
        var deadline: (at: ContinuousClock.Instant, seconds: Int)?
    }

    private struct State {
        var entries: [Int64: Entry] = [:]
        var stopping = false
        var slotWaiters: [CheckedContinuation<Void, Never>] = []
        var progressChanged = false
        var reporting = 0
        /// Who waits for the last held task to go (the drain), by waiter.
        var emptyWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var cancelledEmptyWaiters: Set<UInt64> = []
        var nextWaiter: UInt64 = 0

        /// Tasks the agent may still claim: `limit` fan-outs at once, and at most as many again waiting
        /// for their reports to reach the server (so that an unreachable server stops the claiming).
        func free(limit: Int) -> Int {
            max(0, min(limit - (entries.count - reporting), 2 * limit - entries.count))
        }
    }

    private let state = Mutex(State())

    var count: Int { state.withLock { $0.entries.count } }

    /// How many more tasks a poll may claim now.
    func free(limit: Int) -> Int { state.withLock { $0.free(limit: limit) } }

    /// The task's fan-out is over; its report is being sent. It frees its slot for the next claim.
    func markReporting(_ id: Int64) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard state.entries[id]?.reporting == false else { return [] }
            state.entries[id]?.reporting = true
            state.reporting += 1
            defer { state.slotWaiters = [] }
            return state.slotWaiters
        }
        for waiter in waiters { waiter.resume() }
    }
    var ids: [Int64] { state.withLock { Array($0.entries.keys) } }
    var isStopping: Bool { state.withLock { $0.stopping } }

    var snapshot: [HeldTask] {
        state.withLock { $0.entries.map { HeldTask(id: $0.key, attempt: $0.value.attempt, lease: $0.value.lease, progress: $0.value.progress) } }
    }

    func add(_ claimed: ClaimedTaskObject) {
        var entry = Entry(attempt: claimed.task.attempt, lease: claimed.lease)
        entry.deadline = claimed.task.timeoutSeconds.map { (ContinuousClock.now + .seconds($0), $0) }
        state.withLock { $0.entries[claimed.task.id] = entry }
    }

    /// Stops every held task whose `timeout_seconds` has run out (the agent's one-second sweep calls it):
    /// its participants are stopped as for a cancel, and the attempt is reported failed.
    func stopOverdue(now: ContinuousClock.Instant = .now) {
        let overdue = state.withLock { state in
            state.entries.compactMap { id, entry in
                entry.stop == nil && entry.deadline.map { $0.at <= now } == true ? (id, entry.deadline!.seconds) : nil
            }
        }
        for (id, seconds) in overdue { cancel(id, reason: .timedOut(seconds: seconds)) }
    }

    /// What the next heartbeat says of the task's progress.
    /// `announce`: report it early, with the next one-second heartbeat step, rather than at the interval.
    func setProgress(_ id: Int64, _ progress: TaskProgress, announce: Bool = true) {
        state.withLock { state in
            state.entries[id]?.progress = progress
            if announce { state.progressChanged = true }
        }
    }

    func setParticipantsDone(_ id: Int64, _ done: Int) {
        state.withLock { $0.entries[id]?.participantsDone = done }
    }

    func participantsDone(of id: Int64) -> Int? {
        state.withLock { $0.entries[id]?.participantsDone }
    }

    /// True once after progress changed: the heartbeat loop then reports it early.
    func takeProgressChange() -> Bool {
        state.withLock { state in
            defer { state.progressChanged = false }
            return state.progressChanged
        }
    }

    /// Returns once the task is stopped (`cancel`: a cancel request, a lost lease, its timeout, the agent's
    /// shutdown) — at once if it already is or is not held — or when the caller is cancelled: the stop
    /// signal a fan-out races its participant calls against.
    func stopped(_ id: Int64) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    guard state.entries[id]?.stop == nil, state.entries[id]?.stopWaitEnded == false else { return true }
                    state.entries[id]?.stopWaiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                let waiter = state.entries[id]?.stopWaiter
                state.entries[id]?.stopWaiter = nil
                state.entries[id]?.stopWaitEnded = true
                return waiter
            }
            waiter?.resume()
        }
    }

    func remove(_ id: Int64) {
        let (waiters, emptied) = state.withLock { state in
            let removed = state.entries.removeValue(forKey: id)
            removed?.stopWaiter?.resume()
            if removed?.reporting == true { state.reporting -= 1 }
            defer {
                state.slotWaiters = []
                if state.entries.isEmpty { state.emptyWaiters = [:] }
            }
            return (state.slotWaiters, state.entries.isEmpty ? Array(state.emptyWaiters.values) : [])
        }
        for waiter in waiters { waiter.resume() }
        for waiter in emptied { waiter.resume() }
    }

    /// Returns true once no task is held, false when `timeout` passes first or the caller is cancelled.
    func waitUntilEmpty(within timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.emptied(); return !Task.isCancelled }
            group.addTask { try? await Task.sleep(for: timeout); return false }
            let first = await group.next() ?? false
            group.cancelAll()
            return first && count == 0
        }
    }

    /// Returns once no task is held, or at once when the caller is cancelled.
    private func emptied() async {
        let waiter = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state in
                    if state.entries.isEmpty || state.cancelledEmptyWaiters.remove(waiter) != nil { return true }
                    state.emptyWaiters[waiter] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { state in
                guard let continuation = state.emptyWaiters.removeValue(forKey: waiter) else {
                    state.cancelledEmptyWaiters.insert(waiter)
                    return nil as CheckedContinuation<Void, Never>?
                }
                return continuation
            }
            continuation?.resume()
        }
    }

    /// Returns once a task can be claimed (see `free(limit:)`), or polling stops.
    func waitForSlot(limit: Int) async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state in
                if state.free(limit: limit) > 0 || state.stopping { return true }
                state.slotWaiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    func stopPolling() {
        let waiters = state.withLock { state in
            state.stopping = true
            defer { state.slotWaiters = [] }
            return state.slotWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Stops the task's fan-out; the first reason given wins.
    func cancel(_ id: Int64, reason: StopReason) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard var entry = state.entries[id], entry.stop == nil else { return nil }
            entry.stop = reason
            defer { entry.stopWaiter = nil; state.entries[id] = entry }
            return entry.stopWaiter
        }
        waiter?.resume()
    }

    func cancellation(of id: Int64) -> StopReason? {
        state.withLock { $0.entries[id]?.stop }
    }
}

/// Endpoints of the cluster's nodes, refreshed when a participant is missing or the copy is old.
actor EndpointCache {
    private var endpoints: [String: String] = [:]
    private var fetchedAt: ContinuousClock.Instant?
    /// The one refresh in flight: the tasks that need it meanwhile wait for it instead of each asking
    /// the server (hundreds of tasks start at once under load).
    private var refresh: Task<[String: String]?, Never>?
    private let maximumAge: Duration = .seconds(10)

    func resolve(_ nodes: [String], cluster: String, client: TaskyardClient) async -> [String: String] {
        let stale = fetchedAt.map { ContinuousClock.now - $0 > maximumAge } ?? true
        guard stale || nodes.contains(where: { endpoints[$0] == nil }) else { return endpoints }
        let refresh = self.refresh ?? Task {
            (try? await client.nodes(cluster: cluster)).map { fresh in
                Dictionary(fresh.map { ($0.id, $0.endpoint) }, uniquingKeysWith: { _, last in last })
            }
        }
        self.refresh = refresh
        if let fresh = await refresh.value {
            endpoints = fresh
            fetchedAt = .now
        }
        if self.refresh == refresh { self.refresh = nil }
        return endpoints
    }
}
