import Foundation
import Testing
import TaskyardAPI
@testable import TaskyardAgent

/// The agent's held tasks, without a network: deadlines stopped by the sweep, and the drain's wait.
@Suite("Held tasks")
struct HeldTasksTests {
    static func claim(id: Int64, timeoutSeconds: Int? = nil) throws -> ClaimedTaskObject {
        let json = #"""
            {"id": \#(id), "cluster_id": "c1", "type": "noop", "state": "received", "payload": {}, "assigned_node": "n1",
             "participating_nodes": ["n1"], "parent_id": null, "attempt": 1, "max_attempts": 3, "priority": 0, "run_after": null,
             "timeout_seconds": \#(timeoutSeconds.map(String.init) ?? "null"), "lease_expires_at": null, "ordering_key": null,
             "idempotency_key": null, "opaque_id": null, "traceparent": null, "result": null, "error": null,
             "cancel_requested": false, "abortable": true, "internal": false, "progress": null, "complete_when": "all",
             "concurrency_key": null, "concurrency_limit": null, "waiting_for": null, "schedule_id": null, "participants": [],
             "created_at": "2026-12-01T00:00:00.000Z", "received_at": null, "finished_at": null,
             "updated_at": "2026-12-01T00:00:00.000Z", "lease": "l\#(id)", "grants": {}}
            """#
        return try APIJSON.decode(ClaimedTaskObject.self, from: Data(json.utf8))
    }

    @Test("a task past its timeout_seconds is stopped by the sweep, with its seconds; one without a timeout never")
    func sweepStopsOverdue() throws {
        let held = HeldTasks()
        held.add(try Self.claim(id: 1, timeoutSeconds: 2))
        held.add(try Self.claim(id: 2))
        held.stopOverdue(now: .now + .seconds(1))
        #expect(held.cancellation(of: 1) == nil, "not yet due")
        held.stopOverdue(now: .now + .seconds(3))
        #expect(held.cancellation(of: 1) == .timedOut(seconds: 2))
        #expect(held.cancellation(of: 2) == nil)
        held.cancel(1, reason: .cancelRequested)
        #expect(held.cancellation(of: 1) == .timedOut(seconds: 2), "the first reason stands")
    }

    @Test("the drain's wait ends when the last task goes, or at its timeout, or at once when nothing is held")
    func waitUntilEmpty() async throws {
        let held = HeldTasks()
        #expect(await held.waitUntilEmpty(within: .seconds(5)), "nothing held")
        held.add(try Self.claim(id: 1))
        held.add(try Self.claim(id: 2))
        let started = ContinuousClock.now
        #expect(await held.waitUntilEmpty(within: .milliseconds(100)) == false, "still held")
        #expect(ContinuousClock.now - started < .seconds(5))
        async let emptied = held.waitUntilEmpty(within: .seconds(30))
        held.remove(1)
        held.remove(2)
        #expect(await emptied, "the last removal ends the wait")
        let cancelled = Task { () -> Bool in
            held.add(try Self.claim(id: 3))
            return await held.waitUntilEmpty(within: .seconds(30))
        }
        cancelled.cancel()
        #expect(try await cancelled.value == false, "a cancelled wait returns")
    }

    @Test("a fan-out's stop signal: it fires on cancel with the first reason, at once for a task already stopped or not held, and ends when its waiter is cancelled")
    func stopSignal() async throws {
        let held = HeldTasks()
        held.add(try Self.claim(id: 1))
        async let stopped: Void = held.stopped(1)
        held.cancel(1, reason: .lost)
        await stopped
        #expect(held.cancellation(of: 1) == .lost)
        await held.stopped(1)  // already stopped: returns at once
        await held.stopped(99)  // not held: returns at once
        held.add(try Self.claim(id: 2))
        let waiting = Task { await held.stopped(2) }
        waiting.cancel()
        await waiting.value
        #expect(held.cancellation(of: 2) == nil, "the waiter left; the task was not stopped")
        held.add(try Self.claim(id: 3))
        async let removed: Void = held.stopped(3)
        held.remove(3)
        await removed
    }
}
