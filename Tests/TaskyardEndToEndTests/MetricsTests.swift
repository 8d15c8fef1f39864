import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
@testable import TaskyardAgent
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardSecurity
import TaskyardTestSupport

/// `GET /metrics` on the server and on each agent's endpoint, as Prometheus scrapes them.
@Suite("Metrics")
struct MetricsTests {
    struct Scrape {
        let status: Int
        let text: String

        /// The value of the series `name{labels}` (labels exactly as written, in order), if present.
        func value(_ series: String) -> Double? {
            for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
                return Double(line.dropFirst(series.count + 1))
            }
            return nil
        }

        func has(family name: String, type: String) -> Bool { text.contains("# TYPE \(name) \(type)\n") }
    }

    static func scrape(_ url: String, token: String?) async throws -> Scrape {
        var request = HTTPClientRequest(url: url + "/metrics")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response = try await HTTPTransport.shared.client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 4 << 20)
        return Scrape(status: Int(response.status.code), text: String(buffer: body))
    }

    @Test("the server counts submits, claims and ends by cluster, type and state, and reads live tasks and nodes from the database")
    func serverMetrics() async throws {
        try await Deployment.run(nodes: ["n1", "n2"]) { deployment in
            // A node with no agent: its tasks stay queued and age.
            _ = try await deployment.client.registerNode(cluster: "c1", node: "idle", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            let before = try await Self.scrape(deployment.serverURL, token: deployment.adminToken)
            #expect(before.status == 200)
            let completed = "taskyard_tasks_finished_total{cluster=\"c1\",type=\"echo\",state=\"completed\"}"
            let failed = "taskyard_tasks_finished_total{cluster=\"c1\",type=\"fail\",state=\"failed\"}"
            let submitted = "taskyard_tasks_submitted_total{cluster=\"c1\",type=\"echo\"}"

            var ids: [Int64] = []
            for index in 0..<5 {
                ids.append(try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "echo", participatingNodes: ["n1", "n2"],
                                                                                              payload: ["i": .integer(Int64(index))])).id)
            }
            ids.append(try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "fail", participatingNodes: ["n2"],
                                                                                          maxAttempts: 1)).id)
            _ = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "echo", participatingNodes: ["idle"]))
            for id in ids { _ = try await deployment.finished(id) }

            // What is read from the database is kept for two seconds: the scrape above may still be it.
            var after = try await Self.scrape(deployment.serverURL, token: deployment.adminToken)
            try await eventually("the scrape shows the queued task", within: .seconds(10)) {
                after = try await Self.scrape(deployment.serverURL, token: deployment.adminToken)
                return after.value("taskyard_tasks{cluster=\"c1\",node=\"idle\",state=\"queued\"}") != nil
            }
            #expect(after.status == 200)
            #expect((after.value(submitted) ?? 0) - (before.value(submitted) ?? 0) == 6)
            #expect((after.value(completed) ?? 0) - (before.value(completed) ?? 0) == 5)
            #expect((after.value(failed) ?? 0) - (before.value(failed) ?? 0) == 1)
            #expect((after.value("taskyard_tasks_claimed_total{cluster=\"c1\",type=\"echo\"}") ?? 0) >= 5)
            #expect(after.has(family: "taskyard_task_pickup_seconds", type: "histogram"))
            #expect((after.value("taskyard_task_pickup_seconds_count{cluster=\"c1\"}") ?? 0) >= 6)
            #expect((after.value("taskyard_task_run_seconds_count{cluster=\"c1\",type=\"echo\"}") ?? 0) >= 5)
            // Read from the database at scrape time.
            #expect(after.value("taskyard_tasks{cluster=\"c1\",node=\"idle\",state=\"queued\"}") == 1)
            #expect((after.value("taskyard_oldest_queued_task_age_seconds{cluster=\"c1\",node=\"idle\"}") ?? -1) >= 0)
            #expect(after.value("taskyard_nodes{cluster=\"c1\",status=\"online\"}") == 3)
            #expect(after.has(family: "taskyard_db_pool_connections", type: "gauge"))
            #expect(after.has(family: "taskyard_waiting_requests", type: "gauge"))
            #expect(after.value("taskyard_maintenance_leader") == 1)
            // HTTP requests, by route template (bounded), method and status.
            #expect((after.value("taskyard_http_requests_total{route=\"/api/v1/clusters/{cluster_id}/tasks\",method=\"POST\",status=\"201\"}") ?? 0) >= 7,
                    "\(after.text.split(separator: "\n").filter { $0.hasPrefix("taskyard_http_requests_total") })")
            #expect(after.has(family: "taskyard_http_request_duration_seconds", type: "histogram"))
            // Every family is named as Prometheus wants it: counters end in _total.
            for line in after.text.split(separator: "\n") where line.hasPrefix("# TYPE ") && line.hasSuffix(" counter") {
                #expect(line.dropLast(" counter".count).hasSuffix("_total"), "\(line)")
            }
        }
    }

    @Test("/metrics needs read; a token bound to another cluster sees none of this cluster's series")
    func serverMetricsAccess() async throws {
        try await Deployment.run(nodes: ["n1"]) { deployment in
            _ = try await deployment.client.createCluster(id: "c2")
            let id = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "echo", participatingNodes: ["n1"])).id
            _ = try await deployment.finished(id)
            #expect(try await Self.scrape(deployment.serverURL, token: nil).status == 401)
            let submitOnly = try await deployment.store.mintToken(scopes: [.submit])
            #expect(try await Self.scrape(deployment.serverURL, token: submitOnly).status == 403)
            let nodeToken = try await deployment.store.mintNodeToken(cluster: "c1", node: "n1")
            #expect(try await Self.scrape(deployment.serverURL, token: nodeToken).status == 403)

            let ownCluster = try await Self.scrape(deployment.serverURL, token: try await deployment.store.mintToken(scopes: [.read], cluster: "c1"))
            #expect(ownCluster.status == 200)
            #expect(ownCluster.text.contains("cluster=\"c1\""))
            let otherCluster = try await Self.scrape(deployment.serverURL, token: try await deployment.store.mintToken(scopes: [.read], cluster: "c2"))
            #expect(otherCluster.status == 200)
            #expect(!otherCluster.text.contains("cluster=\"c1\""))
            #expect(otherCluster.has(family: "taskyard_tasks_submitted_total", type: "counter"))
        }
    }

    @Test("task types are labelled per cluster: past 200 in one cluster its new types count as other, and another cluster's still show")
    func typeBudgetPerCluster() async throws {
        try await Deployment.run(nodes: []) { deployment in
            _ = try await deployment.client.createCluster(id: "c2")
            // A node no agent serves in each cluster: the tasks stay queued.
            for cluster in ["c1", "c2"] {
                _ = try await deployment.client.registerNode(cluster: cluster, node: "idle", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            }
            // The server keeps 200 types a cluster (ServerMetrics.typeLimit); c1's submitters name 201.
            let flood = (0...200).map { SubmitTaskRequest(type: "flood-\($0)", participatingNodes: ["idle"]) }
            _ = try await deployment.client.submitBatch(cluster: "c1", flood)
            _ = try await deployment.client.submit(cluster: "c2", SubmitTaskRequest(type: "fresh", participatingNodes: ["idle"]))
            let scrape = try await Self.scrape(deployment.serverURL, token: deployment.adminToken)
            #expect(scrape.text.contains(#"taskyard_tasks_submitted_total{cluster="c1",type="flood-199"} 1"#))
            #expect(!scrape.text.contains(#"type="flood-200""#), "c1's 201st type has a series of its own")
            #expect(scrape.text.contains(#"taskyard_tasks_submitted_total{cluster="c1",type="other"} 1"#))
            #expect(scrape.text.contains(#"taskyard_tasks_submitted_total{cluster="c2",type="fresh"} 1"#),
                    "c1's submitters spent c2's budget")
        }
    }

    @Test("each agent's endpoint shows its handler runs, calls served, reports and held tasks, to a read token of its cluster")
    func agentMetrics() async throws {
        try await Deployment.run(nodes: ["n1", "n2"]) { deployment in
            for _ in 0..<4 {
                let id = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "echo", participatingNodes: ["n1", "n2"])).id
                _ = try await deployment.finished(id)
            }
            let id = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "nosuch", participatingNodes: ["n1"], maxAttempts: 1)).id
            _ = try await deployment.finished(id)
            let nodes = try await deployment.client.nodes(cluster: "c1")
            let n1 = try #require(nodes.first { $0.id == "n1" }?.endpoint)
            let n2 = try #require(nodes.first { $0.id == "n2" }?.endpoint)
            let read = try await deployment.store.mintToken(scopes: [.read], cluster: "c1")

            let initiator = try await Self.scrape(n1, token: read)
            #expect(initiator.status == 200)
            #expect(initiator.value("taskyard_agent_handler_runs_total{type=\"echo\",outcome=\"completed\"}") == 4)
            #expect(initiator.value("taskyard_agent_reports_total{outcome=\"taken\"}") == 5, "every task it initiated, reported once")
            #expect(initiator.value("taskyard_agent_handler_runs_total{type=\"unknown\",outcome=\"unknown_type\"}") == 1)
            #expect(initiator.value("taskyard_agent_handler_duration_seconds_count{type=\"echo\"}") == 4)
            #expect((initiator.value("taskyard_agent_report_batches_total") ?? 0) >= 1)
            #expect(initiator.has(family: "taskyard_agent_report_batch_size", type: "histogram"))
            #expect(initiator.value("taskyard_agent_tasks_held") == 0)
            // n2 ran its part of each task for n1's calls.
            let participant = try await Self.scrape(n2, token: read)
            #expect(participant.value("taskyard_agent_handler_runs_total{type=\"echo\",outcome=\"completed\"}") == 4)
            let served = (participant.value("taskyard_agent_participant_calls_total{route=\"single\",outcome=\"answered\"}") ?? 0)
                + (participant.value("taskyard_agent_participant_calls_total{route=\"batch\",outcome=\"answered\"}") ?? 0)
            #expect(served == 4)

            #expect(try await Self.scrape(n1, token: nil).status == 401)
            #expect(try await Self.scrape(n1, token: "not-a-token").status == 401)
            // A node token (even this node's) or a read token of another cluster may not.
            #expect(try await Self.scrape(n1, token: try await deployment.store.mintNodeToken(cluster: "c1", node: "n1")).status == 403)
            _ = try await deployment.client.createCluster(id: "c2")
            #expect(try await Self.scrape(n1, token: try await deployment.store.mintToken(scopes: [.read], cluster: "c2")).status == 403)
        }
    }

    @Test("an agent never sends a scraper's secret on: the server sees only its digest, and made-up tokens cost it a few checks a second")
    func scrapesKeepTheSecret() async throws {
        try await Deployment.run(nodes: ["n1"], serverSettings: { $0.authentication.touchInterval = .milliseconds(100) }) { deployment in
            let n1 = try #require(try await deployment.client.nodes(cluster: "c1").first { $0.id == "n1" }?.endpoint)
            let read = try await deployment.store.mintToken(scopes: [.read], cluster: "c1", name: "scraper")
            func lastUsed() async throws -> Date? {
                try #require(try await deployment.client.tokens().first { $0.name == "scraper" }).lastUsedAt
            }
            for _ in 0..<3 { #expect(try await Self.scrape(n1, token: read).status == 200) }
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await lastUsed() == nil, "the server never received the scraper's token")
            // The same token used on the server itself is seen there: the check above can fail.
            var direct = deployment.client
            direct.token = read
            _ = try await direct.tasks(cluster: "c1", query: ["limit": "1"])
            try await eventually("the server records the token's use", within: .seconds(10)) { try await lastUsed() != nil }

            // Well-formed made-up tokens: refused, and past a few checks a second the agent stops asking.
            var statuses: [Int] = []
            for _ in 0..<20 { statuses.append(try await Self.scrape(n1, token: TokenSecret.generate()).status) }
            #expect(Set(statuses).isSubset(of: [401, 429]), "\(statuses)")
            #expect(statuses.filter { $0 == 401 }.count <= 2 * ScrapeGate.checksPerSecond, "\(statuses)")
        }
    }
}
