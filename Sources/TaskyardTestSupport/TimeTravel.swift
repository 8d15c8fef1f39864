import Foundation
import Postgres
import TaskyardDomain
import TaskyardStore

/// How a test travels in time: the statements read PostgreSQL's clock (`now()`), which no test can move,
/// so a test moves the rows' timestamps back instead — here, in one place, the only SQL a test writes on
/// `tasks`, `nodes`, `api_tokens` and `schedules` (beside `StateMachineAgreementTests`, which sets states by hand to
/// try every transition, and the counts some tests read).
extension TaskStore {
    /// The task finished `age` ago.
    public func backdateFinish(of taskID: Int64, by age: Duration) async throws {
        try await travel("UPDATE tasks SET finished_at = now() - make_interval(secs => $2::double precision) WHERE id = $1",
                         [taskID, age.inSeconds])
    }

    /// Every finished task finished `age` ago.
    public func backdateAllFinished(by age: Duration) async throws {
        try await travel("UPDATE tasks SET finished_at = now() - make_interval(secs => $1::double precision) WHERE finished_at IS NOT NULL",
                         [age.inSeconds])
    }

    /// The task's backoff (`run_after`) is over.
    public func endBackoff(of taskID: Int64) async throws {
        try await travel("UPDATE tasks SET run_after = NULL WHERE id = $1", [taskID])
    }

    /// The task's lease ran out a second ago.
    public func expireLease(of taskID: Int64) async throws {
        try await travel("UPDATE tasks SET lease_expires_at = now() - interval '1 second' WHERE id = $1", [taskID])
    }

    /// The node was last heard from `age` ago.
    public func backdateLastSeen(of node: String, by age: Duration) async throws {
        try await travel("UPDATE nodes SET last_seen_at = now() - make_interval(secs => $2::double precision) WHERE id = $1",
                         [node, age.inSeconds])
    }

    /// The token named `name` expired a second ago.
    public func expireToken(named name: String) async throws {
        try await travel("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE name = $1", [name])
    }

    /// The schedule's next slot is `slot` (the leader last ran before it): a stop of the leaders, seen from
    /// the schedule.
    public func moveNextRun(of schedule: String, to slot: Date) async throws {
        try await travel("UPDATE schedules SET next_run_at = $2 WHERE id = $1", [schedule, slot])
    }

    /// One statement that moves rows back in time.
    private func travel(_ sql: String, _ parameters: [any PostgresEncodable]) async throws {
        try await pool.withConnection { connection in _ = try connection.query(sql, parameters) }
    }
}
