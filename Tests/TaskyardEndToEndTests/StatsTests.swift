import Foundation
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardServer
import TaskyardStore
import TaskyardTestSupport

/// `GET …/stats`: the charts' series, kept by the maintenance leader from the change feed.
@Suite("Charts' series")
struct StatsTests {
    static let path = "/api/v1/clusters/\(Deployment.cluster)/stats"

    static func series(_ deployment: Deployment, _ query: String = "") async throws -> [String: Any] {
        let answer = try await APIContractTests.send(deployment, "GET", Self.path + query)
        #expect(answer.status == 200, "\(String(decoding: answer.body, as: UTF8.self))")
        return try #require(try JSONSerialization.jsonObject(with: answer.body) as? [String: Any])
    }

    static func points(_ series: [String: Any]) -> [[String: Any]] { series["points"] as? [[String: Any]] ?? [] }

    static func total(_ series: [String: Any], _ key: String) -> Int {
        points(series).reduce(0) { $0 + ($1[key] as? Int ?? 0) }
    }

    static func most(_ series: [String: Any], _ key: String) -> Double {
        points(series).compactMap { $0[key] as? Double ?? ($0[key] as? Int).map(Double.init) }.max() ?? 0
    }

    @Test("what finished is counted once, by state, for the cluster, each type and each node; depth and percentiles are there")
    func countsWhatFinished() async throws {
        try await Deployment.run(nodes: ["n1", "n2"], serverSettings: { $0.stats.interval = .milliseconds(200) }) { deployment in
            let client = deployment.client
            let cluster = Deployment.cluster
            var ids: [Int64] = []
            ids += try await client.submitBatch(cluster: cluster, Array(repeating: SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]), count: 12)).map(\.id)
            ids += try await client.submitBatch(cluster: cluster, Array(repeating: SubmitTaskRequest(type: "sleep", participatingNodes: ["n2"], payload: ["seconds": .double(0.05)]), count: 5)).map(\.id)
            ids += try await client.submitBatch(cluster: cluster, Array(repeating: SubmitTaskRequest(type: "fail", participatingNodes: ["n2"], maxAttempts: 1), count: 3)).map(\.id)
            // Queued far ahead: two to cancel before any claim, four that stay queued (the depth).
            let later = Date() + 3600
            let waiting = try await client.submitBatch(cluster: cluster, Array(repeating: SubmitTaskRequest(type: "noop", participatingNodes: ["n1"], runAfter: later), count: 6)).map(\.id)
            for id in waiting.prefix(2) { _ = try await client.cancel(cluster: cluster, id: id) }
            for id in ids { _ = try await client.wait(cluster: cluster, id: id, timeout: .seconds(30)) }

            var whole: [String: Any] = [:]
            try await eventually("the rollup counts every finished task", within: .seconds(20)) {
                whole = try await Self.series(deployment)
                return Self.total(whole, "completed") == 17 && Self.total(whole, "failed") == 3 && Self.total(whole, "cancelled") == 2
                    && Self.most(whole, "queued") >= 4
            }
            #expect(Self.points(whole).count == 60 && whole["step_seconds"] as? Int == 60 && whole["window_seconds"] as? Int == 3600)
            #expect(whole["type"] is NSNull && whole["node"] is NSNull)
            let p50 = Self.most(whole, "run_p50_ms"), p99 = Self.most(whole, "run_p99_ms")
            #expect(p50 > 0 && p99 >= p50, "run times of what ran")
            #expect(p99 >= 35, "the sleep handler's 50 ms runs are in the p99 (within a bucket): \(p99)")
            #expect(Self.most(whole, "pickup_p99_ms") > 0)

            let sleep = try await Self.series(deployment, "?type=sleep")
            #expect(sleep["type"] as? String == "sleep" && Self.total(sleep, "completed") == 5 && Self.total(sleep, "failed") == 0)
            let fail = try await Self.series(deployment, "?type=fail&window=24h")
            #expect(Self.total(fail, "failed") == 3 && fail["step_seconds"] as? Int == 600 && Self.points(fail).count == 144)
            let n1 = try await Self.series(deployment, "?node=n1")
            #expect(n1["node"] as? String == "n1")
            #expect(Self.total(n1, "completed") == 12 && Self.total(n1, "cancelled") == 2 && Self.total(n1, "failed") == 0)
            #expect(Self.most(n1, "queued") >= 4, "n1's four far-off tasks")
            let n2 = try await Self.series(deployment, "?node=n2&window=7d")
            #expect(Self.total(n2, "completed") == 5 && Self.total(n2, "failed") == 3 && Self.points(n2).count == 168)
            #expect(Self.total(try await Self.series(deployment, "?type=none-of-these"), "completed") == 0)

            // Counted once: later runs of the rollup add nothing.
            try await Task.sleep(for: .milliseconds(600))
            let again = try await Self.series(deployment)
            #expect(Self.total(again, "completed") == 17 && Self.total(again, "failed") == 3 && Self.total(again, "cancelled") == 2)
        }
    }

    @Test("a bad window, step or scope is a 400 naming it; an unknown cluster a 404")
    func refusals() async throws {
        try await Deployment.run(nodes: ["n1"]) { deployment in
            for (query, field) in [("window=0h", "window"), ("window=8d", "window"), ("window=1w", "window"), ("window=soon", "window"),
                                   ("window=", "window"), ("step=30s", "step"), ("window=1h&step=2h", "step"),
                                   ("window=7d&step=1m", "step"), ("type=a&node=n1", "node")] {
                let answer = try await APIContractTests.send(deployment, "GET", Self.path + "?" + query)
                #expect(answer.status == 400, "\(query)")
                let error = (try JSONSerialization.jsonObject(with: answer.body) as? [String: Any])?["error"] as? [String: Any]
                #expect(error?["field"] as? String == field, "\(query)")
            }
            #expect(try await APIContractTests.send(deployment, "GET", "/api/v1/clusters/nowhere/stats").status == 404)
            #expect(try await APIContractTests.send(deployment, "GET", Self.path, authorized: false).status == 401)
        }
    }

    @Test("two leaders for a moment count nothing twice: a position moved meanwhile adds nothing")
    func guardedPosition() async throws {
        try await Deployment.run(nodes: ["n1"], serverSettings: { $0.maintenanceEnabled = false }) { deployment in
            let tasks = try await deployment.client.submitBatch(cluster: Deployment.cluster,
                                                                Array(repeating: SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]), count: 4))
            for task in tasks { _ = try await deployment.client.wait(cluster: Deployment.cluster, id: task.id, timeout: .seconds(30)) }
            let stats = deployment.store.stats
            let from = try #require(try await stats.positions().first { $0.cluster == Deployment.cluster }?.position)
            var read: (finishes: [StatsBucket.Finish], next: ChangeCursor) = ([], from)
            // The feed hands out a change once every older transaction has ended: soon, not at once.
            try await eventually("the finished tasks are in the feed") {
                read = try await stats.finished(cluster: Deployment.cluster, after: from, limit: 100)
                return read.finishes.count == 4
            }
            let buckets = StatsBucket.rollUp(read.finishes)
            #expect(try await stats.record(buckets, cluster: Deployment.cluster, from: from, next: read.next))
            #expect(try await !stats.record(buckets, cluster: Deployment.cluster, from: from, next: read.next),
                    "the second leader read the same position: it moved meanwhile")
            let now = Date()
            for grain in StatsBucket.Grain.allCases {
                let counted = try await stats.buckets(cluster: Deployment.cluster, scope: .cluster, grain: grain, from: now - 7200, until: now + 60)
                #expect(counted.reduce(0) { $0 + $1.completed } == 4, "\(grain)")
            }
        }
    }
}
