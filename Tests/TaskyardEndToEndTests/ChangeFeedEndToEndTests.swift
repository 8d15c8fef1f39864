import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardTestSupport

/// The change stream resumes: every change has an id, and a consumer that comes back with `Last-Event-ID`
/// gets what it missed, each change once, and then the live ones.
@Suite("The change stream resumes")
struct ChangeFeedEndToEndTests {
    /// A change stream's `change` events as they arrive.
    struct Stream {
        struct Change {
            var id: String
            var object: ChangeObject
        }

        private var body: HTTPClientResponse.Body.AsyncIterator
        private var buffer = ""

        static func open(_ deployment: Deployment, lastEventID: String? = nil, timeout: Int = 60) async throws -> Stream {
            var request = HTTPClientRequest(url: deployment.serverURL + "/api/v1/clusters/c1/changes?timeout=\(timeout)")
            request.headers.add(name: "Authorization", value: "Bearer \(deployment.adminToken)")
            if let lastEventID { request.headers.add(name: "Last-Event-ID", value: lastEventID) }
            let response = try await HTTPTransport.shared.client.execute(request, timeout: .seconds(Int64(timeout) + 10))
            #expect(response.status.code == 200)
            return Stream(body: response.body.makeAsyncIterator())
        }

        /// Changes until `done` says so, or the stream ends.
        mutating func changes(until done: ([Change]) -> Bool) async throws -> [Change] {
            var changes: [Change] = []
            while !done(changes) {
                while let end = buffer.range(of: "\n\n") {
                    let block = buffer[..<end.lowerBound]
                    buffer.removeSubrange(..<end.upperBound)
                    let fields = Dictionary(block.split(separator: "\n").compactMap { line -> (String, String)? in
                        let parts = line.split(separator: ":", maxSplits: 1)
                        guard parts.count == 2 else { return nil }
                        return (String(parts[0]), String(parts[1].drop { $0 == " " }))
                    }, uniquingKeysWith: { $1 })
                    guard fields["event"] == "change", let id = fields["id"], let data = fields["data"] else { continue }
                    changes.append(Change(id: id, object: try APIJSON.decoder().decode(ChangeObject.self, from: Data(data.utf8))))
                }
                if done(changes) { break }
                guard let chunk = try await body.next() else { break }
                buffer += String(buffer: chunk)
            }
            return changes
        }
    }

    @Test("a consumer away across a thousand transitions gets every one when it comes back with Last-Event-ID, once, then live ones")
    func resumes() async throws {
        try await Deployment.run(nodes: ["n1"]) { deployment in
            var stream = try await Stream.open(deployment)
            let first = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
            let seen = try await stream.changes { changes in changes.contains { $0.object.taskID == first.id && $0.object.event.to == .completed } }
            #expect(seen.filter { $0.object.taskID == first.id }.map(\.object.event.to) == [.queued, .received, .completed])
            let resumeFrom = try #require(seen.last).id

            // Away: 334 tasks, each queued, received, completed — 1,002 transitions.
            let away = try await deployment.client.submitBatch(cluster: "c1", (0..<334).map { _ in
                SubmitTaskRequest(type: "noop", participatingNodes: ["n1"])
            })
            try await eventually("every task finished", within: .seconds(120), every: .milliseconds(200)) {
                try await deployment.store.reads.liveTaskCounts().isEmpty
            }

            var resumed = try await Stream.open(deployment, lastEventID: resumeFrom)
            let missed = try await resumed.changes { $0.count >= 3 * away.count }
            #expect(missed.count == 3 * away.count)
            #expect(Set(missed.map(\.id)).count == missed.count, "each change once")
            #expect(!missed.contains { $0.object.taskID == first.id }, "nothing from before the position")
            let byTask = Dictionary(grouping: missed, by: \.object.taskID)
            #expect(Set(byTask.keys) == Set(away.map(\.id)))
            #expect(byTask.values.allSatisfy { $0.map(\.object.event.to) == [.queued, .received, .completed] },
                    "each task's changes in the order they happened")

            let live = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
            let after = try await resumed.changes { changes in changes.contains { $0.object.taskID == live.id && $0.object.event.to == .completed } }
            #expect(after.map(\.object.taskID).allSatisfy { $0 == live.id } && after.count == 3, "then the live ones")
        }
    }

    @Test("a Last-Event-ID that is no id of this stream is a 400 naming it")
    func badPosition() async throws {
        try await Deployment.run(nodes: []) { deployment in
            for value in ["abc", "12", "1-2-3", "-5", "99999999999999999999999-1"] {
                let answer = try await APIContractTests.send(deployment, "GET", "/api/v1/clusters/c1/changes?timeout=0",
                                                             headers: ["Last-Event-ID": value])
                #expect(answer.status == 400, "\(value)")
                #expect(String(decoding: answer.body, as: UTF8.self).contains("\"field\":\"Last-Event-ID\""), "\(value)")
            }
        }
    }
}
