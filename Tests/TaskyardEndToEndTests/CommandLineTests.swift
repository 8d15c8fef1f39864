import Foundation
import Testing
@testable import TaskyardCommandLine
import TaskyardSecurity
import TaskyardAPI
import TaskyardTestSupport

@Suite("The taskyard command against a running server")
struct CommandLineTests {
    @Test("task watch draws one row per participant until the task ends, then exits as task wait does")
    func watch() async throws {
        try await Deployment.run { deployment in
            let slow = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "sleep", participatingNodes: ["n1", "n2", "n3"],
                                                                                           payload: ["seconds": 0.6]))
            let watched = try await TestEnvironment.runTaskyardAsync(["task", "watch", String(slow.id), "--cluster", "c1",
                                                                      "--server", deployment.serverURL, "--interval", "0.2"],
                                                                     environment: deployment.cliEnvironment)
            #expect(watched.status == 0, "\(watched.output)")
            let drawings = watched.output.components(separatedBy: "Task \(slow.id)  sleep  ")
            // Not a terminal: a new matrix each time it changed — first running (or waiting), last completed.
            #expect(drawings.count >= 3, "\(watched.output)")
            #expect(drawings[1].contains("running") || drawings[1].contains("waiting"), "\(watched.output)")
            let last = try #require(drawings.last)
            #expect(last.hasPrefix("COMPLETED"), "\(last)")
            for node in ["n1", "n2", "n3"] {
                #expect(last.split(separator: "\n").contains { $0.hasPrefix(node) && $0.contains("completed") }, "\(last)")
            }

            let failing = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "fail", participatingNodes: ["n1", "n2"],
                                                                                              payload: ["message": "disk full"], maxAttempts: 1))
            let failed = try await TestEnvironment.runTaskyardAsync(["task", "watch", String(failing.id), "--cluster", "c1",
                                                                     "--server", deployment.serverURL],
                                                                    environment: deployment.cliEnvironment)
            #expect(failed.status == 1, "\(failed.output)")
            #expect(failed.output.split(separator: "\n").contains { $0.hasPrefix("n2") && $0.contains("failed") && $0.contains("disk full") },
                    "\(failed.output)")
        }
    }

    @Test("no server, or a token it refuses: one line naming the server and what to do, exit 69 or 77")
    func errorsAPersonCanActOn() async throws {
        let nowhere = "http://127.0.0.1:\(TestEnvironment.freePorts(1)[0])"
        let unreachable = try await TestEnvironment.runTaskyardAsync(["task", "list", "--cluster", "c1", "--server", nowhere],
                                                                     environment: ["TASKYARD_TOKEN": "whatever"])
        #expect(unreachable.status == 69, "\(unreachable.output)")
        let line = unreachable.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!line.contains("\n"), "one line: \(line)")
        #expect(line.contains("cannot reach the Taskyard server at \(nowhere): connection refused"), "\(line)")
        #expect(line.contains("taskyard dev") && line.contains("--server"), "\(line)")

        try await Deployment.run(nodes: []) { deployment in
            let refused = try await TestEnvironment.runTaskyardAsync(["task", "list", "--cluster", "c1", "--server", deployment.serverURL],
                                                                     environment: ["TASKYARD_TOKEN": "not-a-token"])
            #expect(refused.status == 77, "\(refused.output)")
            #expect(refused.output.contains("at \(deployment.serverURL) refused the token") && refused.output.contains("--token"), "\(refused.output)")
            let readOnly = try await deployment.store.mintToken(scopes: [.read])
            let forbidden = try await TestEnvironment.runTaskyardAsync(["task", "submit", "noop", "--nodes", "n1", "--cluster", "c1",
                                                                        "--server", deployment.serverURL],
                                                                       environment: ["TASKYARD_TOKEN": readOnly])
            #expect(forbidden.status == 77, "\(forbidden.output)")
            #expect(forbidden.output.contains("does not let this token do that"), "\(forbidden.output)")
        }
    }

    @Test("task submit, list, show and events print what a person needs; --json prints the API's JSON")
    func taskCommands() async throws {
        try await Deployment.run { deployment in
            func taskyard(_ arguments: String...) async throws -> String {
                let run = try await TestEnvironment.runTaskyardAsync(arguments + ["--server", deployment.serverURL], environment: deployment.cliEnvironment)
                #expect(run.status == 0, "taskyard \(arguments.joined(separator: " ")): \(run.output)")
                return run.output
            }
            let submitted = try await taskyard("task", "submit", "fail", "--nodes", "n1,n2", "--cluster", "c1",
                                               "--payload", #"{"message": "disk full"}"#, "--max-attempts", "1")
            #expect(submitted.contains("task 1 queued, assigned to n1"))
            _ = try await deployment.finished(1)

            let list = try await taskyard("task", "list", "--cluster", "c1")
            let lines = list.split(separator: "\n").map(String.init)
            #expect(lines.first?.hasPrefix("Task ID  State   Assigned To  Type  Created") == true, "\(list)")
            #expect(lines.count == 2, "children are left out unless --children: \(list)")
            #expect(lines[1].contains("failed") && lines[1].contains("n1") && lines[1].hasSuffix("1/1"))

            let show = try await taskyard("task", "show", "1", "--cluster", "c1")
            #expect(show.contains("Task 1  fail  FAILED"))
            #expect(show.contains("error         n1: disk full; n2: disk full"))
            #expect(show.contains("Participants"))
            #expect(show.split(separator: "\n").filter { $0.contains("failed") && $0.contains("disk full") }.count == 2)

            let events = try await taskyard("task", "events", "1", "--cluster", "c1")
            #expect(events.contains("queued    received"))

            let json = try await taskyard("task", "show", "1", "--cluster", "c1", "--json")
            let detail = try APIJSON.decode(TaskDetail.self, from: Data(json.utf8))
            #expect(detail.task.state == .failed && detail.task.participants.count == 2 && detail.children.isEmpty)

            let nodes = try await taskyard("node", "list", "--cluster", "c1")
            #expect(nodes.contains("n1    online"))
            let clusters = try await taskyard("cluster", "list")
            #expect(clusters.contains("c1"))

            let missing = try await TestEnvironment.runTaskyardAsync(["task", "show", "99", "--cluster", "c1",
                                                                       "--server", deployment.serverURL], environment: deployment.cliEnvironment)
            #expect(missing.status != 0)
            #expect(missing.output.contains("task 99 does not exist in cluster c1"))
        }
    }

    @Test("schedule create, list, show, pause, resume and delete; task submit --on-finish and task show name the follow-up")
    func scheduleCommands() async throws {
        try await Deployment.run(nodes: ["n1", "n2"]) { deployment in
            func taskyard(_ arguments: String...) async throws -> String {
                let run = try await TestEnvironment.runTaskyardAsync(arguments + ["--server", deployment.serverURL, "--cluster", "c1"],
                                                                     environment: deployment.cliEnvironment)
                #expect(run.status == 0, "taskyard \(arguments.joined(separator: " ")): \(run.output)")
                return run.output
            }
            let created = try await taskyard("schedule", "create", "nightly", "--cron", "30 2 * * *", "--timezone", "Europe/Berlin",
                                             "--type", "noop", "--nodes", "n1,n2", "--catch-up", "one")
            #expect(created.contains("schedule nightly: 30 2 * * * (Europe/Berlin), next run "), "\(created)")
            let list = try await taskyard("schedule", "list")
            #expect(list.hasPrefix("Schedule  Cron") && list.contains("nightly") && list.contains("Europe/Berlin") && list.contains("one"), "\(list)")
            let show = try await taskyard("schedule", "show", "nightly")
            #expect(show.contains("cron      30 2 * * * (Europe/Berlin), catch-up one") && show.contains(#""type":"noop""#), "\(show)")
            #expect(try await taskyard("schedule", "pause", "nightly").contains("schedule nightly paused"))
            #expect(try await deployment.store.schedules.schedule(cluster: "c1", id: "nightly").paused)
            #expect(try await taskyard("schedule", "resume", "nightly").contains("schedule nightly resumed, next run "))
            #expect(try await taskyard("schedule", "delete", "nightly").contains("schedule nightly deleted"))
            let remaining = try await taskyard("schedule", "list", "--json")
            #expect(try APIJSON.decode(ScheduleList.self, from: Data(remaining.utf8)).schedules.isEmpty, "\(remaining)")

            let submitted = try await taskyard("task", "submit", "noop", "--nodes", "n1", "--on-finish", "noop@n2")
            let id = try #require(submitted.split(separator: " ").dropFirst().first.flatMap { Int64($0) }, "\(submitted)")
            let finished = try await deployment.finished(id)
            let followUp = try #require(finished.task.followUpID)
            let shown = try await taskyard("task", "show", String(id))
            #expect(shown.contains("on finish     noop@n2, follow-up task \(followUp)"), "\(shown)")
            let refused = try await TestEnvironment.runTaskyardAsync(["task", "submit", "noop", "--nodes", "n1", "--on-finish", "noop", "--cluster", "c1",
                                                                      "--server", deployment.serverURL], environment: deployment.cliEnvironment)
            #expect(refused.status != 0 && refused.output.contains("--on-finish takes type@node"))
        }
    }

    @Test("taskyard webhook: subscribes and shows the secret once, lists, shows, reads deliveries, resends and deletes")
    func webhookCommands() async throws {
        try await Deployment.run(nodes: ["n1"], serverSettings: { $0.webhooks.interval = .milliseconds(50) }) { deployment in
            func taskyard(_ arguments: String...) async throws -> String {
                let run = try await TestEnvironment.runTaskyardAsync(arguments + ["--server", deployment.serverURL, "--cluster", "c1"],
                                                                     environment: deployment.cliEnvironment)
                #expect(run.status == 0, "taskyard \(arguments.joined(separator: " ")): \(run.output)")
                return run.output
            }
            // Nothing listens on port 9 of loopback: every attempt fails, and is logged.
            let created = try await taskyard("webhook", "create", "http://127.0.0.1:9/in", "--events", "task.completed", "--types", "noop")
            #expect(created.contains("webhook 1: http://127.0.0.1:9/in for task.completed") && created.contains("signing secret (shown only now): whsec_"),
                    "\(created)")
            let list = try await taskyard("webhook", "list")
            #expect(list.hasPrefix("Webhook  URL") && list.contains("http://127.0.0.1:9/in") && list.contains("noop") && !list.contains("whsec_"), "\(list)")
            let show = try await taskyard("webhook", "show", "1")
            #expect(show.contains("events   task.completed") && !show.contains("whsec_"), "\(show)")
            let task = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
            _ = try await deployment.finished(task.id)
            try await eventually("the failed attempt is in the log") {
                try await deployment.client.deliveries(cluster: "c1", webhook: 1).deliveries.first?.attempts ?? 0 >= 1
            }
            let deliveries = try await taskyard("webhook", "deliveries", "1")
            #expect(deliveries.hasPrefix("Delivery  Event") && deliveries.contains("task.completed") && deliveries.contains("pending")
                    && deliveries.contains(String(task.id)), "\(deliveries)")
            let delivery = try #require(try await deployment.client.deliveries(cluster: "c1", webhook: 1).deliveries.first)
            #expect(try await taskyard("webhook", "resend", "1", String(delivery.id)).contains("delivery \(delivery.id) of webhook 1 is pending again"))
            #expect(try await taskyard("webhook", "delete", "1").contains("webhook 1 deleted"))
            let refused = try await TestEnvironment.runTaskyardAsync(["webhook", "create", "http://127.0.0.1:9/in", "--events", "task.done",
                                                                      "--cluster", "c1", "--server", deployment.serverURL],
                                                                     environment: deployment.cliEnvironment)
            #expect(refused.status != 0 && refused.output.contains("events[0]"), "\(refused.output)")
        }
    }

    @Test("duration flags refuse infinite and absurd values with a clear error, before anything starts")
    func absurdDurations() throws {
        let serve = ["serve", "--key-file", TestEnvironment.keyFilePath, "--database-url", "postgres://nobody@127.0.0.1:1/none",
                     "--listen", "127.0.0.1:0"]
        let agent = ["agent", "--server", "http://127.0.0.1:1", "--cluster", "c1", "--node", "n1", "--listen", "127.0.0.1:0"]
        for (arguments, option) in [(serve + ["--lease-seconds", "inf"], "--lease-seconds"),
                                    (serve + ["--lease-seconds", "1e16"], "--lease-seconds"),
                                    (serve + ["--statement-timeout", "1e16"], "--statement-timeout"),
                                    (serve + ["--node-timeout", "nan"], "--node-timeout"),
                                    (agent + ["--participant-timeout", "1e16"], "--participant-timeout"),
                                    (agent + ["--heartbeat-interval", "inf"], "--heartbeat-interval"),
                                    (agent + ["--shutdown-grace=-1"], "--shutdown-grace")] {
            let run = try TestEnvironment.runTaskyard(arguments)
            #expect(run.status != 0, "\(arguments)")
            #expect(run.output.contains("\(option) takes seconds"), "\(arguments): \(run.output)")
            #expect(!run.output.contains("Fatal error"), "\(arguments): \(run.output)")
        }
    }

    @Test("serve refuses to start without a key file, with one other users may read, and with one that holds no key")
    func keyFileRequired() throws {
        let serve = ["serve", "--database-url", "postgres://nobody@127.0.0.1:1/none", "--listen", "127.0.0.1:0"]
        let folder = FileManager.default.temporaryDirectory.appending(path: "taskyard-keys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let open = folder.appending(path: "open.key").path
        try KeyFile.create(path: open)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: open)
        let empty = folder.appending(path: "empty.key").path
        FileManager.default.createFile(atPath: empty, contents: Data("tyk_short\n".utf8), attributes: [.posixPermissions: 0o600])
        let made = try TestEnvironment.runTaskyard(["keys", "create-file", folder.appending(path: "made.key").path])
        #expect(made.status == 0, "\(made.output)")
        let again = try TestEnvironment.runTaskyard(["keys", "create-file", folder.appending(path: "made.key").path])
        #expect(again.status != 0, "never over an existing file")
        for (arguments, message) in [(serve, "no key file given"), (serve + ["--key-file", open], "chmod 600"),
                                     (serve + ["--key-file", empty], "does not hold a key"),
                                     (serve + ["--key-file", folder.appending(path: "missing.key").path], "cannot be read")] {
            let run = try TestEnvironment.runTaskyard(arguments, environment: ["TASKYARD_KEY_FILE": ""])
            #expect(run.status != 0, "\(arguments)")
            #expect(run.output.contains(message), "\(arguments): \(run.output)")
        }
    }

    @Test("plain HTTP on an address other than loopback is refused unless --allow-plain-http, and then warned about")
    func plainHTTPOffLoopback() throws {
        let serve = ["serve", "--key-file", TestEnvironment.keyFilePath, "--database-url", "postgres://nobody@127.0.0.1:1/none"]
        let agent = ["agent", "--server", "http://127.0.0.1:1", "--cluster", "c1", "--node", "n1", "--token", "tyd_x"]
        for arguments in [serve + ["--listen", "0.0.0.0:0"], agent + ["--listen", "0.0.0.0:0"], ["dev", "--listen", "0.0.0.0:0"]] {
            let run = try TestEnvironment.runTaskyard(arguments)
            #expect(run.status != 0, "\(arguments)")
            #expect(run.output.contains("refusing to serve plain HTTP") && run.output.contains("--allow-plain-http"), "\(arguments): \(run.output)")
        }
        // Allowed: it goes on (to fail on the database nobody runs) after a warning.
        let allowed = try TestEnvironment.runTaskyard(serve + ["--listen", "0.0.0.0:0", "--allow-plain-http"])
        #expect(!allowed.output.contains("refusing"), "\(allowed.output)")
        #expect(allowed.output.contains("serving plain HTTP on 0.0.0.0:0"), "\(allowed.output)")
        for loopback in ["127.0.0.1:0", "[::1]:0", "localhost:0"] {
            let run = try TestEnvironment.runTaskyard(serve + ["--listen", loopback])
            #expect(!run.output.contains("plain HTTP"), "\(loopback): \(run.output)")
        }
    }

    @Test("the dev folder's admin token goes only to a server on loopback")
    func devTokenStaysLocal() {
        for url in ["http://127.0.0.1:8080", "https://localhost:8443", "http://[::1]:8080", "http://127.1.2.3:80"] {
            #expect(ServerOptions.isLoopback(url), "\(url)")
        }
        for url in ["http://10.0.0.5:8080", "https://taskyard.example:8443", "http://[2001:db8::1]:8080", "http://127.0.0.1.example:80", "not a url"] {
            #expect(!ServerOptions.isLoopback(url), "\(url)")
        }
    }
}

@Suite("Logs a machine can read")
struct JSONLogTests {
    @Test("--log-format json: each line an agent logs is one JSON object with time, level, logger and message and the entry's fields, never its token")
    func agentLogsJSON() async throws {
        let secret = TokenSecret.generate()
        // Nothing listens on port 1: the agent logs its attempts to register, with the error as a field.
        let agent = try TaskyardProcess.start(["agent", "--server", "http://127.0.0.1:1", "--cluster", "c1", "--node", "n1",
                                               "--listen", "127.0.0.1:0", "--token", secret, "--log-format", "json"], name: "json-logs")
        try await eventually("the agent logs twice", within: .seconds(20)) { agent.output.split(separator: "\n").count >= 2 }
        let output = agent.output
        await agent.stop()
        #expect(!output.contains(secret), "the token is in the log")
        let lines = output.split(separator: "\n")
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String], "\(line)")
            #expect(object["logger"] == "taskyard.agent" && object["message"] != nil && object["level"] != nil, "\(line)")
            let time = try #require(object["time"])
            #expect(time.hasSuffix("Z") && (try? Date(time, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true))) != nil, "\(time)")
        }
        let retrying = try #require(lines.first { $0.contains("cannot register yet") }, "\(output)")
        #expect(retrying.contains(#""level":"warning""#) && retrying.contains(#""error":"#), "\(retrying)")
    }

    @Test("--log-format json: a failed attempt's line names the task, its type and attempt, the cluster, the node and the trace id; never the payload")
    func attemptLinesCarryTheTrace() async throws {
        try await Deployment.run(nodes: []) { deployment in
            let token = try await deployment.store.mintNodeToken(cluster: Deployment.cluster, node: "n7")
            let agent = try TaskyardProcess.start(["agent", "--server", deployment.serverURL, "--cluster", Deployment.cluster, "--node", "n7",
                                                   "--listen", "127.0.0.1:0", "--token", token, "--log-format", "json"], name: "json-trace")
            defer { Task { await agent.stop() } }
            try await eventually("the agent registers", within: .seconds(20)) {
                try await deployment.client.nodes(cluster: Deployment.cluster).contains { $0.id == "n7" && $0.status == .online }
            }
            let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
            let submitted = try await APIContractTests.send(
                deployment, "POST", "/api/v1/clusters/\(Deployment.cluster)/tasks",
                body: #"{"type": "fail", "participating_nodes": ["n7"], "max_attempts": 1, "payload": {"message": "disk full", "marker": "payload-marker-77"}}"#,
                headers: ["traceparent": "00-\(traceID)-00f067aa0ba902b7-01"])
            #expect(submitted.status == 201)
            try await eventually("the agent logs the failed attempt", within: .seconds(20)) { agent.output.contains("task attempt failed") }
            let output = agent.output
            #expect(!output.contains("payload-marker-77") && !output.contains(token), "no payload, no token")
            let line = try #require(output.split(separator: "\n").first { $0.contains("task attempt failed") })
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String], "\(line)")
            #expect(object["trace_id"] == traceID && object["task"] == "1" && object["attempt"] == "1" && object["type"] == "fail", "\(line)")
            #expect(object["cluster"] == Deployment.cluster && object["node"] == "n7" && object["level"] == "warning", "\(line)")
            #expect(object["error"]?.contains("disk full") == true, "\(line)")
        }
    }

    @Test("--log-format takes text or json, and says so")
    func badFormat() throws {
        let (status, output) = try TestEnvironment.runTaskyard(["agent", "--server", "http://127.0.0.1:1", "--cluster", "c1", "--node", "n1",
                                                                "--token", TokenSecret.generate(), "--log-format", "xml"])
        #expect(status != 0 && output.contains("--log-format must be text or json"), "\(output)")
    }
}
