import Foundation
import Postgres
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport
import Testing

/// Agents on hosts of their own, over a network that is slow, lossy or cut (`NetworkLab`): PostgreSQL,
/// two server replicas and three agents, each a process on its own host. Each scenario asserts that no
/// task is lost, doubled or stuck (the chaos soak's invariants).
@Suite("Across a network", .serialized, .enabled(if: NetworkLab.available,
         "skipped: needs root, iproute2's ip and /dev/net/tun to make network namespaces (README, Test it)"))
struct NetworkTests {
    /// Waits until no task is queued or received, then checks the soak's invariants for `total` tasks.
    static func checkNothingLostDoubledOrStuck(_ deployment: LabDeployment, total: Int, within limit: Duration) async throws -> [String: Int] {
        try await eventually("every task ends", within: limit, every: .milliseconds(250)) {
            try await deployment.pool.withConnection { connection in
                try connection.query("SELECT count(*)::integer AS n FROM tasks WHERE state IN ('queued', 'received')").single().decode("n", as: Int.self)
            } == 0
        }
        let counts = try await ChaosSoakTests.invariants(deployment.pool)
        #expect(counts["roots"] == total, "lost or duplicated tasks: \(counts)")
        #expect(counts["stuck"] == 0 && counts["doubled"] == 0 && counts["stale"] == 0 && counts["unrun"] == 0, "\(counts)")
        #expect(counts["slots held"] == 0, "\(counts)")
        return counts
    }

    static func state(of id: Int64, _ deployment: LabDeployment) async throws -> (state: String, attempt: Int) {
        try await deployment.pool.withConnection { connection in
            let row = try connection.query("SELECT state, attempt FROM tasks WHERE id = $1", [id]).single()
            return (try row.decode("state"), try row.decode("attempt"))
        }
    }

    @Test("30 ms ± 10 ms between every host and 1% of packets lost: 1,000 three-node fan-out tasks all complete, once each")
    func slowLossyNetwork() async throws {
        try await LabDeployment.run { deployment in
            try deployment.lab.impair(delay: .milliseconds(30), jitter: .milliseconds(10), loss: 1)
            let started = ContinuousClock.now
            let nodes = deployment.agents
            for batch in 0..<10 {
                // Each task on all three nodes, the initiator turning round.
                let submissions = (0..<100).map { index in
                    let first = (batch * 100 + index) % nodes.count
                    return TaskSubmission(type: "echo", participatingNodes: Array(nodes[first...] + nodes[..<first]),
                                          payload: ["n": .integer(Int64(batch * 100 + index))])
                }
                _ = try await deployment.store.submissions.submitBatch(submissions, cluster: "c1")
            }
            let counts = try await Self.checkNothingLostDoubledOrStuck(deployment, total: 1000, within: .seconds(300))
            let elapsed = started.duration(to: .now)
            #expect(counts["completed"] == 1000, "\(counts)")
            let outcomes = try await deployment.pool.withConnection { connection in
                try connection.query("SELECT count(*)::integer AS n FROM task_participants WHERE state = 'completed'").single().decode("n", as: Int.self)
            }
            #expect(outcomes == 3000, "three completed outcomes a task")
            print("network lab, 30±10 ms and 1% loss: 1,000 three-node tasks in \(elapsed), retried \(counts["retried"] ?? -1); switch: \(try deployment.lab.command("stats"))")
        }
    }

    /// A handler that runs long on attempt 1 and briefly after, leaving marks of how each run ended
    /// (`$MARKS` is the deployment's marks folder).
    static let markingHandler = """
        #!/bin/sh
        mark="$MARKS/$TASKYARD_TASK_ID-$TASKYARD_ATTEMPT-$TASKYARD_NODE"
        touch "$mark.started"
        trap 'touch "$mark.stopped"; exit 143' TERM INT
        if [ "$TASKYARD_ATTEMPT" = 1 ]; then sleep 30 & wait $!; else sleep 0.2; fi
        touch "$mark.done"
        echo '{}'
        """

    func marks(_ deployment: LabDeployment, _ id: Int64) -> Set<String> {
        Set(((try? FileManager.default.contentsOfDirectory(atPath: deployment.marks.path)) ?? []).filter { $0.hasPrefix("\(id)-") })
    }

    @Test("an initiator cut off from both servers past its lease: its task goes to another attempt, its stale work is stopped and nothing of attempt 1 is recorded")
    func initiatorCutOffPastItsLease() async throws {
        try await LabDeployment.run(serverArguments: ["--lease-seconds", "3"],
                                    agentArguments: ["--heartbeat-interval", "1", "--poll-wait", "2"],
                                    handlers: ["marking": Self.markingHandler]) { deployment in
            let task = try await deployment.store.submissions.submit(
                TaskSubmission(type: "marking", participatingNodes: ["a1", "a2"], maxAttempts: 3), cluster: "c1").task
            try await eventually("both handlers of attempt 1 run", within: .seconds(30)) {
                marks(deployment, task.id).isSuperset(of: ["\(task.id)-1-a1.started", "\(task.id)-1-a2.started"])
            }
            for server in LabDeployment.servers { try deployment.lab.cut("a1", from: server) }
            let cut = ContinuousClock.now
            // The lease runs out with no heartbeat: the task is queued for its next attempt.
            try await eventually("the lease expires and the task is queued again", within: .seconds(30), every: .milliseconds(200)) {
                try await Self.state(of: task.id, deployment).state == "queued"
            }
            print("network lab: a1's task queued again \(cut.duration(to: .now)) after a1 was cut off")
            for server in LabDeployment.servers { try deployment.lab.heal("a1", with: server) }
            let healed = ContinuousClock.now
            // Back on the network, a1 learns its claim was lost and stops attempt 1's handlers, its own and
            // a2's; it claims attempt 2, which completes.
            try await eventually("attempt 1's handlers are stopped", within: .seconds(45), every: .milliseconds(200)) {
                marks(deployment, task.id).isSuperset(of: ["\(task.id)-1-a1.stopped", "\(task.id)-1-a2.stopped"])
            }
            print("network lab: attempt 1's handlers stopped \(healed.duration(to: .now)) after the link healed")
            try await eventually("attempt 2 completes", within: .seconds(60), every: .milliseconds(200)) {
                try await Self.state(of: task.id, deployment) == ("completed", 2)
            }
            let seen = marks(deployment, task.id)
            #expect(!seen.contains("\(task.id)-1-a1.done") && !seen.contains("\(task.id)-1-a2.done"), "attempt 1 ran to its end: \(seen)")
            let attempt1Outcomes = try await deployment.pool.withConnection { connection in
                try connection.query("SELECT count(*)::integer AS n FROM task_participants WHERE task_id = $1 AND attempt = 1", [task.id])
                    .single().decode("n", as: Int.self)
            }
            #expect(attempt1Outcomes == 0, "the stale attempt's report was taken")
            _ = try await Self.checkNothingLostDoubledOrStuck(deployment, total: 1, within: .seconds(10))
        }
    }

    @Test("a participant cut off from its initiator, not from the server: a quorum task completes without it at once, an all task fails within the participant timeout")
    func participantCutOffFromItsInitiator() async throws {
        try await LabDeployment.run(agentArguments: ["--participant-timeout", "5"]) { deployment in
            try deployment.lab.cut("a1", from: "a3")
            // One after the other: calls to one participant go in one batch at a time, so a call made while
            // an earlier one still waits for its connection waits for that first (noted in the README).
            let all = try await deployment.store.submissions.submit(
                TaskSubmission(type: "echo", participatingNodes: ["a1", "a2", "a3"], maxAttempts: 1), cluster: "c1").task
            try await eventually("the all task fails", within: .seconds(30), every: .milliseconds(100)) {
                try await Self.state(of: all.id, deployment).state == "failed"
            }
            let quorum = try await deployment.store.submissions.submit(
                TaskSubmission(type: "echo", participatingNodes: ["a1", "a2", "a3"], completeWhen: .quorum), cluster: "c1").task
            try await eventually("the quorum task completes", within: .seconds(10), every: .milliseconds(100)) {
                try await Self.state(of: quorum.id, deployment).state == "completed"
            }
            let a3 = try await deployment.pool.withConnection { connection in
                try connection.query("SELECT task_id, state FROM task_participants WHERE node = 'a3' ORDER BY task_id")
                    .map { row throws(PostgresError) in "\(try row.decode("task_id", as: Int64.self)):\(try row.decode("state", as: String.self))" }
            }
            #expect(a3 == ["\(all.id):failed", "\(quorum.id):cancelled"], "a3's outcomes: unreachable for all, not needed for the quorum")
            // From claim to end (a submit through the test's store wakes no poll: the agents find it at their
            // re-check, up to 2 s later).
            let ran = try await deployment.pool.withConnection { connection in
                try connection.query("SELECT id, extract(epoch FROM finished_at - received_at)::float8 AS ran FROM tasks ORDER BY id")
                    .map { row throws(PostgresError) in try row.decode("ran", as: Double.self) }
            }
            #expect(ran.count == 2 && ran[0] < 8 && ran[1] < 1, "the all task within --participant-timeout 5, the quorum task without waiting for a3: \(ran) s")
            print("network lab: a3 unreachable from its initiator: from claim to end, the all task \(ran[0]) s, the quorum task \(ran[1]) s")
            _ = try await Self.checkNothingLostDoubledOrStuck(deployment, total: 2, within: .seconds(10))
        }
    }

    @Test("a server replica cut off from PostgreSQL: the agents move to the other replica and every task completes")
    func replicaCutOffFromTheDatabase() async throws {
        try await LabDeployment.run(agentArguments: ["--poll-wait", "2"]) { deployment in
            // Every agent names s1 first: they all poll it until it cannot answer.
            try deployment.lab.cut("s1", from: "db")
            let started = ContinuousClock.now
            let submissions = (0..<60).map { TaskSubmission(type: "echo", participatingNodes: [deployment.agents[$0 % 3]]) }
            _ = try await deployment.store.submissions.submitBatch(submissions, cluster: "c1")
            let counts = try await Self.checkNothingLostDoubledOrStuck(deployment, total: 60, within: .seconds(90))
            #expect(counts["completed"] == 60, "\(counts)")
            print("network lab: s1 cut off from PostgreSQL; 60 tasks completed through s2 in \(started.duration(to: .now))")
            try deployment.lab.heal("s1", with: "db")
        }
    }
}
