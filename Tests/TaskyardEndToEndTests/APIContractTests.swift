import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import TaskyardAPI
import TaskyardClient

@Suite("API contract details")
struct APIContractTests {
    struct Answer {
        let status: Int
        let headers: [String: String]
        let body: Data
    }

    static func send(_ deployment: Deployment, _ method: String, _ path: String, body: String? = nil,
                     headers: [String: String] = [:], authorized: Bool = true) async throws -> Answer {
        var request = HTTPClientRequest(url: deployment.serverURL + path)
        request.method = .init(rawValue: method)
        if authorized { request.headers.add(name: "Authorization", value: "Bearer \(deployment.adminToken)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPTransport.shared.client.execute(request, timeout: .seconds(30))
        let data = Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)
        var fields: [String: String] = [:]
        for header in response.headers { fields[header.name.lowercased()] = header.value }
        return Answer(status: Int(response.status.code), headers: fields, body: data)
    }

    @Test("X-Opaque-Id is stored and echoed; a repeated Idempotency-Key answers 200 with the first task")
    func headers() async throws {
        try await Deployment.run(nodes: []) { deployment in
            _ = try await deployment.client.registerNode(cluster: "c1", node: "n1", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            let body = #"{"type": "noop", "participating_nodes": ["n1"]}"#
            let first = try await Self.send(deployment, "POST", "/api/v1/clusters/c1/tasks", body: body,
                                            headers: ["X-Opaque-Id": "ticket-7", "Idempotency-Key": "k-1"])
            #expect(first.status == 201)
            #expect(first.headers["x-opaque-id"] == "ticket-7")
            let task = try APIJSON.decode(TaskObject.self, from: first.body)
            #expect(task.opaqueID == "ticket-7")
            #expect(task.idempotencyKey == "k-1")
            let again = try await Self.send(deployment, "POST", "/api/v1/clusters/c1/tasks", body: body,
                                            headers: ["Idempotency-Key": "k-1"])
            #expect(again.status == 200)
            #expect(try APIJSON.decode(TaskObject.self, from: again.body).id == task.id)
            // Every field of the task object is present, null ones included.
            let object = try #require(try JSONSerialization.jsonObject(with: first.body) as? [String: Any])
            for key in ["parent_id", "run_after", "lease_expires_at", "ordering_key", "result", "error", "progress",
                        "received_at", "finished_at", "cancel_requested", "abortable", "internal"] {
                #expect(object.keys.contains(key), "missing \(key)")
            }
        }
    }

    @Test("health, readiness, paging by cursor, cancel, retry and delete answer as the contract says")
    func lifecycleOverHTTP() async throws {
        try await Deployment.run(nodes: []) { deployment in
            #expect(try await deployment.client.health("healthz") == 200)
            #expect(try await deployment.client.health("readyz") == 200)
            _ = try await deployment.client.registerNode(cluster: "c1", node: "n1", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            let tasks = try await deployment.client.submitBatch(cluster: "c1",
                Array(repeating: SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]), count: 5))
            let firstPage = try await deployment.client.tasks(cluster: "c1", query: ["limit": "3"])
            #expect(firstPage.tasks.map(\.id) == tasks.prefix(3).map(\.id))
            let next = try #require(firstPage.next)
            let secondPage = try await deployment.client.tasks(cluster: "c1", query: ["limit": "3", "after": next])
            #expect(secondPage.tasks.map(\.id) == tasks.suffix(2).map(\.id))
            #expect(secondPage.next == nil)

            let cancelled = try await deployment.client.cancel(cluster: "c1", id: tasks[0].id, reason: "not needed")
            #expect(cancelled.state == .cancelled)
            let again = try await Self.send(deployment, "POST", "/api/v1/clusters/c1/tasks/\(tasks[0].id)/cancel")
            #expect(again.status == 409)
            #expect(try await deployment.client.retry(cluster: "c1", id: tasks[0].id).state == .queued)
            let live = try await Self.send(deployment, "DELETE", "/api/v1/clusters/c1/tasks/\(tasks[1].id)")
            #expect(live.status == 409)
            _ = try await deployment.client.cancel(cluster: "c1", id: tasks[1].id)
            let deleted = try await Self.send(deployment, "DELETE", "/api/v1/clusters/c1/tasks/\(tasks[1].id)")
            #expect(deleted.status == 204)
            let gone = try await Self.send(deployment, "GET", "/api/v1/clusters/c1/tasks/\(tasks[1].id)")
            #expect(gone.status == 404)
            let events = try await deployment.client.events(cluster: "c1", id: tasks[0].id)
            #expect(events.map(\.to) == [.queued, .cancelled, .queued])
            #expect(events[1].detail?["reason"] == "not needed")
        }
    }
}
