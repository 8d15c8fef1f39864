import Testing
import TaskyardDomain

@Suite("State machine")
struct StateMachineTests {
    @Test("the Kadalu path: queued → received → completed or failed")
    func kadaluPath() {
        #expect(TaskStateMachine.next(from: nil, on: .submit) == .queued)
        #expect(TaskStateMachine.next(from: .queued, on: .claim) == .received)
        #expect(TaskStateMachine.next(from: .received, on: .complete) == .completed)
        #expect(TaskStateMachine.next(from: .received, on: .fail) == .failed)
    }

    @Test("terminal states only leave through a retry, and only failed and cancelled ones")
    func terminalStates() {
        for state in TaskState.terminal {
            for action in TaskAction.allCases {
                let next = TaskStateMachine.next(from: state, on: action)
                if action == .retry, state != .completed {
                    #expect(next == .queued, "\(state) --\(action)-->")
                } else {
                    #expect(next == nil, "\(state) --\(action)--> should be refused")
                }
            }
        }
    }

    @Test("cancel ends a queued task and only flags a received one")
    func cancel() {
        #expect(TaskStateMachine.next(from: .queued, on: .cancel) == .cancelled)
        #expect(TaskStateMachine.next(from: .received, on: .cancel) == .received)
        #expect(TaskStateMachine.next(from: .received, on: .acknowledgeCancel) == .cancelled)
        #expect(TaskStateMachine.next(from: .queued, on: .acknowledgeCancel) == nil)
    }

    @Test("the table has one row per state and action, and every action appears")
    func tableIsWellFormed() {
        let keys = TaskStateMachine.transitions.map { "\($0.from?.rawValue ?? "-") \($0.action)" }
        #expect(Set(keys).count == keys.count)
        #expect(Set(TaskStateMachine.transitions.map(\.action)) == Set(TaskAction.allCases))
    }
}

@Suite("Retry policy")
struct RetryPolicyTests {
    @Test("doubles from the base, stops at the cap, and waits between half and all of it")
    func backoff() {
        var policy = RetryPolicy(base: .seconds(2), cap: .seconds(300))
        policy.jitter = { $0.upperBound }
        #expect((1...10).map { policy.delay(afterAttempt: $0) } == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300].map { .seconds($0) })
        #expect(policy.delay(afterAttempt: 10_000) == .seconds(300), "no overflow however many attempts")
        policy.jitter = { $0.lowerBound }
        #expect(policy.delay(afterAttempt: 1) == .seconds(1))
        let random = RetryPolicy(base: .seconds(2), cap: .seconds(300))
        #expect((0..<100).allSatisfy { _ in (Duration.seconds(16)...Duration.seconds(32)).contains(random.delay(afterAttempt: 5)) })
    }
}
