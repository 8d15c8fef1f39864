import Dispatch
import Foundation
import Synchronization

/// A serial executor backed by one dedicated thread.
///
/// libpq calls block. Each connection is an actor whose jobs run on its own thread, so a slow query
/// blocks that thread only and never one of Swift concurrency's few cooperative threads (measured on
/// this machine: blocking calls on the cooperative pool stalled a 10 ms ticker by 1.2 s).
final class ThreadExecutor: SerialExecutor, Sendable {
    private struct State {
        var jobs: [UnownedJob] = []
        var head = 0
        var stopping = false
        var threadID: pthread_t?
    }

    private let state = Mutex(State())
    private let wakeUp = DispatchSemaphore(value: 0)

    init(name: String) {
        let thread = Thread { [self] in self.run() }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        state.withLock { $0.jobs.append(job) }
        wakeUp.signal()
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    func checkIsolated() {
        let current = pthread_self()
        let owner = state.withLock { $0.threadID }
        precondition(owner.map { pthread_equal($0, current) != 0 } ?? false,
                     "not on the connection's thread")
    }

    /// Ends the thread once the jobs already enqueued have run.
    func stop() {
        state.withLock { $0.stopping = true }
        wakeUp.signal()
    }

    private func run() {
        state.withLock { $0.threadID = pthread_self() }
        while true {
            wakeUp.wait()
            let next: UnownedJob?? = state.withLock { state in
                if state.head < state.jobs.count {
                    let job = state.jobs[state.head]
                    state.head += 1
                    if state.head > 64, state.head * 2 > state.jobs.count {
                        state.jobs.removeFirst(state.head)
                        state.head = 0
                    }
                    return .some(job)
                }
                return state.stopping ? .none : .some(nil)
            }
            switch next {
            case .none: return
            case .some(.none): continue
            case .some(.some(let job)): job.runSynchronously(on: asUnownedSerialExecutor())
            }
        }
    }
}
