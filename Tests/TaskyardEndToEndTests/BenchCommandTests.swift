import EmbeddedPostgres
import Foundation
import Testing
import TaskyardTestSupport

/// The benchmark is a command people run on a fresh machine: it must work end to end. Its numbers are
/// not checked here (speed is measured by running it, not by tests); its report is.
@Suite("taskyard-bench")
struct BenchCommandTests {
    @Test("starts PostgreSQL, a server and agents of its own, runs every phase with two participants, and reports JSON")
    func smallRun() async throws {
        let binary = try #require(TestEnvironment.builtBinary(named: "taskyard-bench"), "taskyard-bench should be built next to the tests")
        // Started like `taskyard dev` in its test, not through Foundation's Process: the bench's PostgreSQL
        // would inherit the pipe Process reads from and hold it open.
        let log = "/tmp/taskyard-bench-test-\(UUID().uuidString.prefix(8)).json"
        let scrape = "/tmp/taskyard-bench-test-\(UUID().uuidString.prefix(8)).prom"
        defer {
            try? FileManager.default.removeItem(atPath: log)
            try? FileManager.default.removeItem(atPath: scrape)
        }
        let pid = try Subprocess.spawn(binary.path, [
            "--tasks", "300", "--agents", "2", "--participants", "2", "--samples", "5", "--runs", "1",
            "--batch-size", "100", "--concurrency", "64", "--json", "--log-level", "warning", "--metrics-out", scrape,
            "--preload-history", "500",
        ], outputPath: log)
        let status = await Subprocess.wait(pid, timeout: .seconds(300))
        if status == nil { kill(pid, SIGKILL) }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(status == 0, "\(output)")
        // Progress goes to standard error, into the same file here, before the JSON (the first line that
        // opens an object).
        let start = output.hasPrefix("{\n") ? output.startIndex : output.range(of: "\n{\n").map { output.index(after: $0.lowerBound) }
        let json = String(output[try #require(start, "\(output)")...])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(json)")
        #expect(report["tasks"] as? Int == 300 && report["participants"] as? Int == 2)
        let runs = try #require(report["runs"] as? [[String: Any]])
        #expect(runs.count == 1)
        let first = try #require(runs.first)
        #expect(first["failed"] as? Int == 0, "every task completed")
        #expect((first["tasks_per_second"] as? Double ?? 0) > 0)
        let pickUp = try #require(first["idle_pick_up"] as? [String: Any])
        #expect((pickUp["p50"] as? Double ?? -1) >= 0)
        let raw = try #require(first["raw"] as? [String: Any])
        #expect((raw["tasks_per_second"] as? Double ?? 0) > 0)
        #expect((first["server_peak_bytes"] as? Int ?? 0) > 0 && (report["agent_fresh_bytes"] as? Int ?? 0) > 0)
        // CPU per task of each process, and what the database wrote per task: each task one row in and one out
        // of the live side, one into the finished side, two participant outcomes.
        let cpu = try #require(first["cpu"] as? [String: Double])
        #expect((cpu["server"] ?? 0) > 0 && (cpu["agents"] ?? 0) > 0 && (cpu["postgres"] ?? 0) > 0, "\(cpu)")
        let database = try #require(report["database"] as? [String: Any])
        let tables = Dictionary(uniqueKeysWithValues: (database["tables"] as? [[String: Any]] ?? []).map { ($0["table"] as? String ?? "", $0) })
        #expect(tables["tasks_finished"]?["inserts_per_task"] as? Double == 1, "\(tables)")
        #expect(tables["task_participants"]?["inserts_per_task"] as? Double == 2, "\(tables)")
        let statements = (database["statements"] as? [[String: Any]] ?? []).compactMap { $0["statement"] as? String }
        #expect(statements.contains("tasks.report") && statements.contains("tasks.poll"), "\(statements)")
        // The history's plans were read for every hot statement.
        let history = try #require(report["history"] as? [String: Any])
        #expect(Set((history["plans"] as? [String: Any] ?? [:]).keys).isSuperset(of: ["tasks.poll", "tasks.report"]))
        // The server's metrics as the run left them, and what a scrape costs.
        let metrics = try #require(report["metrics"] as? [String: Any])
        #expect((metrics["families"] as? Int ?? 0) >= 15)
        #expect((metrics["database_read_milliseconds"] as? Double ?? 0) > 0)
        let text = try String(contentsOfFile: scrape, encoding: .utf8)
        #expect(text.contains("taskyard_tasks_submitted_total{cluster=\"bench-"), "\(text.prefix(2000))")
    }

    @Test("--idle-polls holds that many long polls on the servers it starts, measures them, and ends cleanly")
    func idlePolls() async throws {
        let binary = try #require(TestEnvironment.builtBinary(named: "taskyard-bench"), "taskyard-bench should be built next to the tests")
        let out = "/tmp/taskyard-bench-idle-\(UUID().uuidString.prefix(8)).json"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let pid = try Subprocess.spawn("/bin/sh", ["-c", "exec '\(binary.path)' --idle-polls 30 --duration 1 --agents 1 --servers 2 --log-level error 2>/dev/null"],
                                       outputPath: out)
        let status = await Subprocess.wait(pid, timeout: .seconds(300))
        if status == nil { kill(pid, SIGKILL) }
        let output = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(status == 0, "\(output)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")
        #expect(report["polls"] as? Int == 30 && report["servers"] as? Int == 2, "\(report)")
        #expect((report["database_connections"] as? Int ?? 0) > 0 && (report["commits_per_second"] as? Double ?? 0) > 0, "\(report)")
    }

    @Test("refuses more participants than agents, naming the flag")
    func badFlags() throws {
        let binary = try #require(TestEnvironment.builtBinary(named: "taskyard-bench"))
        let run = try TestEnvironment.run(binary, ["--agents", "2", "--participants", "3"])
        #expect(run.status != 0)
        #expect(run.output.contains("--participants"))
        // The production binary carries no benchmark.
        let old = try TestEnvironment.runTaskyard(["bench"])
        #expect(old.status != 0 && old.output.contains("Unexpected argument 'bench'"), "\(old.output)")
        #expect(try !TestEnvironment.runTaskyard(["--help"]).output.contains("bench"))
    }
}
