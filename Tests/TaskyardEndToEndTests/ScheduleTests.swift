import Foundation
import Logging
import Postgres
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardServer
import TaskyardStore
import TaskyardTestSupport

/// Schedules: made, read, replaced, paused and deleted through the API; each due slot submitted once
/// however many leaders run; the slots a stop missed submitted as `catch_up` says.
@Suite("Schedules")
struct ScheduleTests {
    static let path = "/api/v1/clusters/\(Deployment.cluster)/schedules"

    static func body(_ id: String?, cron: String, timezone: String? = nil, catchUp: String? = nil, node: String = "n1",
                     paused: Bool? = nil) -> String {
        var fields: [String] = []
        if let id { fields.append(#""id": "\#(id)""#) }
        fields.append(#""cron": "\#(cron)""#)
        if let timezone { fields.append(#""timezone": "\#(timezone)""#) }
        if let catchUp { fields.append(#""catch_up": "\#(catchUp)""#) }
        if let paused { fields.append(#""paused": \#(paused)"#) }
        fields.append(#""task": {"type": "noop", "participating_nodes": ["\#(node)"], "payload": {"scrub": true}}"#)
        return "{" + fields.joined(separator: ", ") + "}"
    }

    static func object(_ answer: APIContractTests.Answer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: answer.body) as? [String: Any])
    }

    /// Tasks the schedule submitted, and how many distinct slots they are for.
    static func submitted(_ store: TaskStore, schedule: String) async throws -> (tasks: Int, slots: Int) {
        try await store.pool.withConnection { connection in
            let row = try connection.query("""
                SELECT count(*)::integer AS tasks, count(DISTINCT schedule_slot)::integer AS slots FROM tasks WHERE schedule_id = $1
                """, [schedule]).single()
            return (try row.decode("tasks"), try row.decode("slots"))
        }
    }

    @Test("made, read, listed, replaced, paused, resumed and deleted; what is no schedule is refused naming the field")
    func lifecycle() async throws {
        try await Deployment.run(nodes: ["n1"]) { deployment in
            let created = try await APIContractTests.send(deployment, "POST", Self.path, body: Self.body("scrub", cron: "0 3 * * *", timezone: "Europe/Berlin"))
            #expect(created.status == 201)
            let schedule = try Self.object(created)
            #expect(schedule["id"] as? String == "scrub" && schedule["cron"] as? String == "0 3 * * *" && schedule["paused"] as? Bool == false)
            #expect(schedule["catch_up"] as? String == "skip" && schedule["timezone"] as? String == "Europe/Berlin")
            #expect((schedule["next_run_at"] as? String)?.hasSuffix(":00:00.000Z") == true, "3:00 in Berlin: 01:00 or 02:00 UTC")
            #expect(schedule["last_run_at"] is NSNull && schedule["last_task_id"] is NSNull)
            #expect((schedule["task"] as? [String: Any])?["type"] as? String == "noop")

            #expect(try await APIContractTests.send(deployment, "POST", Self.path, body: Self.body("scrub", cron: "0 3 * * *")).status == 409)
            let listed = try await APIContractTests.send(deployment, "GET", Self.path)
            let listedIDs = (try Self.object(listed)["schedules"] as? [[String: Any]])?.map { $0["id"] as? String }
            #expect(listedIDs == ["scrub"])
            let replaced = try await APIContractTests.send(deployment, "PUT", Self.path + "/scrub", body: Self.body(nil, cron: "@every 1h", catchUp: "all"))
            let replacedCron = try Self.object(replaced)["cron"] as? String
            #expect(replaced.status == 200 && replacedCron == "@every 1h")
            let paused = try await APIContractTests.send(deployment, "POST", Self.path + "/scrub/pause")
            let isPaused = try Self.object(paused)["paused"] as? Bool
            #expect(paused.status == 200 && isPaused == true)
            let resumed = try await APIContractTests.send(deployment, "POST", Self.path + "/scrub/resume")
            let isResumed = try Self.object(resumed)["paused"] as? Bool == false
            #expect(resumed.status == 200 && isResumed)
            #expect(try await APIContractTests.send(deployment, "DELETE", Self.path + "/scrub").status == 204)
            let gone = try await APIContractTests.send(deployment, "GET", Self.path + "/scrub")
            #expect(gone.status == 404 && String(decoding: gone.body, as: UTF8.self).contains("schedule_not_found"))

            for (body, field) in [(Self.body("a", cron: "61 * * * *"), "cron"), (Self.body("a", cron: "* * * * *", timezone: "Mars/Base"), "timezone"),
                                  (Self.body("a", cron: "* * * * *", node: "n9"), "task.participating_nodes[0]"),
                                  (Self.body("a", cron: "* * * * *", catchUp: "some"), "catch_up"),
                                  (Self.body(nil, cron: "* * * * *"), "id"), (Self.body("no such id!", cron: "* * * * *"), "id")] {
                let refused = try await APIContractTests.send(deployment, "POST", Self.path, body: body)
                #expect(refused.status == 422, "\(body)")
                #expect(String(decoding: refused.body, as: UTF8.self).contains("\"field\":\"\(field)\""), "\(field): \(String(decoding: refused.body, as: UTF8.self))")
            }
        }
    }

    @Test("each due slot is submitted once, with three leaders at it at once; a leader that died before recording a slot submits nothing new")
    func exactlyOnce() async throws {
        try await Deployment.run(nodes: ["n1"]) { deployment in
            let created = try await APIContractTests.send(deployment, "POST", Self.path, body: Self.body("probe", cron: "@every 1s", catchUp: "all"))
            #expect(created.status == 201)
            // The deployment's own leader runs the duty every second; two more run it as fast as they can.
            let context = MaintenanceContext(store: deployment.store, logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        let end = ContinuousClock.now + .seconds(4)
                        while ContinuousClock.now < end {
                            try await ScheduleRunner().run(context)
                            try await Task.sleep(for: .milliseconds(5))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let (tasks, slots) = try await Self.submitted(deployment.store, schedule: "probe")
            #expect(tasks == slots && tasks >= 3, "\(tasks) tasks for \(slots) slots")

            // A leader that submitted two slots and died before recording them: the next one submits them
            // again, and gets the tasks made the first time.
            let before = try await deployment.store.schedules.schedule(cluster: Deployment.cluster, id: "probe")
            let lastSlot = try #require(before.lastRunAt)
            try await deployment.store.moveNextRun(of: "probe", to: lastSlot.addingTimeInterval(-1))
            try await ScheduleRunner().run(context)
            let again = try await Self.submitted(deployment.store, schedule: "probe")
            #expect(again.tasks == again.slots && again.tasks >= tasks, "the slots submitted again made no second task")
            let detail = try await deployment.client.task(cluster: Deployment.cluster, id: try #require(before.lastTaskID))
            #expect(detail.task.scheduleID == "probe" && detail.task.scheduleSlot == lastSlot)
        }
    }

    @Test("two server processes, the maintenance leader killed with SIGKILL between slots: every slot submitted once, none missed")
    func exactlyOnceAcrossALeaderKilled() async throws {
        try await TestDatabase.withStore { store in
            let database = store.pool.configuration.connectionString
            _ = try await store.clusters.createCluster(id: Deployment.cluster, name: "schedules")
            _ = try await store.clusters.registerNode(cluster: Deployment.cluster, id: "n1", endpoint: "http://127.0.0.1:9")
            let ports = TestEnvironment.freePorts(2)
            let servers = try ports.map { port in
                try TaskyardProcess.start(["serve", "--key-file", TestEnvironment.keyFilePath, "--database-url", database,
                                           "--listen", "127.0.0.1:\(port)", "--log-level", "info"], name: "schedule-serve-\(port)")
            }
            // A failing check must not leave the servers running after the test.
            do {
                let admin = try await store.mintToken(scopes: [.admin])
                let clients = ports.map { TaskyardClient(baseURL: "http://127.0.0.1:\($0)", token: admin) }
                try await eventually("both servers answer", within: .seconds(30)) {
                    var up = 0
                    for client in clients where (try? await client.healthBody()) != nil { up += 1 }
                    return up == 2
                }
                let leader = try await ChaosSoakTests.maintenanceLeader(among: clients)
                let survivor = 1 - leader
                let request = try APIJSON.decode(ScheduleRequest.self, from: Data(Self.body("tick", cron: "@every 1s", catchUp: "all").utf8))
                _ = try await clients[survivor].createSchedule(cluster: Deployment.cluster, request)
                try await eventually("the leader submits slots", within: .seconds(20)) {
                    try await Self.submitted(store, schedule: "tick").slots >= 3
                }
                await servers[leader].stop(SIGKILL)
                let atKill = try await Self.submitted(store, schedule: "tick").slots
                try await eventually("the survivor leads", within: .seconds(20)) { try await clients[survivor].healthBody().maintenanceLeader }
                try await eventually("the survivor submits slots", within: .seconds(20)) {
                    try await Self.submitted(store, schedule: "tick").slots >= atKill + 3
                }
                #expect(await servers[survivor].stop(SIGTERM) == 0)

                let (tasks, slots) = try await Self.submitted(store, schedule: "tick")
                #expect(tasks == slots, "\(tasks) tasks for \(slots) slots: a slot was submitted twice")
                // catch_up all: the seconds no server led were submitted when the survivor took over.
                let span: Int = try await store.pool.withConnection { connection in
                    try connection.query("""
                        SELECT (extract(epoch FROM max(schedule_slot) - min(schedule_slot)))::integer + 1 AS span
                          FROM tasks WHERE schedule_id = 'tick'
                        """).single().decode("span")
                }
                #expect(span == slots, "\(slots) slots over \(span) seconds: a slot was missed across the takeover")
            } catch {
                for server in servers { await server.stop(SIGKILL) }
                throw error
            }
        }
    }

    @Test("after a ten-minute stop: all submits every missed slot, one the latest, skip none that is late")
    func catchUpAfterStop() async throws {
        try await Deployment.run(nodes: ["n1"], serverSettings: { $0.schedules.interval = .seconds(3600) }) { deployment in
            let stop = Date().addingTimeInterval(-600)
            // A slot 30 minutes ago, daily: the only one missed, long past.
            let calendar = Calendar(identifier: .gregorian)
            var utc = calendar
            utc.timeZone = TimeZone(identifier: "UTC")!
            let half = utc.dateComponents([.hour, .minute], from: Date().addingTimeInterval(-1800))
            let daily = "\(half.minute!) \(half.hour!) * * *"
            for (id, cron, mode) in [("all", "* * * * *", "all"), ("one", "* * * * *", "one"), ("skip", "* * * * *", "skip"),
                                     ("late", daily, "skip"), ("late-one", daily, "one")] {
                #expect(try await APIContractTests.send(deployment, "POST", Self.path, body: Self.body(id, cron: cron, catchUp: mode)).status == 201)
            }
            let minute = Date(timeIntervalSince1970: (stop.timeIntervalSince1970 / 60).rounded(.up) * 60)
            for id in ["all", "one", "skip"] { try await deployment.store.moveNextRun(of: id, to: minute) }
            let dailySlot = try #require(try CronSchedule(daily).next(after: Date().addingTimeInterval(-1860)))
            for id in ["late", "late-one"] { try await deployment.store.moveNextRun(of: id, to: dailySlot) }
            try await ScheduleRunner().run(MaintenanceContext(store: deployment.store, logger: Logger(label: "test")))

            let all = try await Self.submitted(deployment.store, schedule: "all")
            #expect((10...11).contains(all.tasks) && all.tasks == all.slots, "every minute of the ten: \(all.tasks)")
            #expect(try await Self.submitted(deployment.store, schedule: "one").tasks == 1)
            #expect(try await Self.submitted(deployment.store, schedule: "skip").tasks == 1, "the current minute is due now")
            #expect(try await Self.submitted(deployment.store, schedule: "late").tasks == 0, "half an hour late: skipped")
            #expect(try await Self.submitted(deployment.store, schedule: "late-one").tasks == 1)
            let skipped = try await deployment.store.schedules.schedule(cluster: Deployment.cluster, id: "late")
            #expect(skipped.nextRunAt.map { $0 > Date() } == true && skipped.lastRunAt == nil)
        }
    }
}
