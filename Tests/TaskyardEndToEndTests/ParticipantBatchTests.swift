import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardTestSupport

@Suite("Batched fan-out")
struct ParticipantBatchTests {
    @Test("an initiator's calls to one node from concurrent tasks travel together in batches; every task completes with both participants")
    func callsTravelInBatches() async throws {
        try await Deployment.run(nodes: ["n1", "n2"], agentSettings: { $0.concurrency = 100 }) { deployment in
            let requests = (0..<300).map { _ in SubmitTaskRequest(type: "echo", participatingNodes: ["n1", "n2"], payload: ["x": 1]) }
            let tasks = try await deployment.client.submitBatch(cluster: "c1", requests)
            for task in tasks {
                let detail = try await deployment.finished(task.id)
                #expect(detail.task.state == .completed)
                #expect(detail.task.participants.map(\.node) == ["n1", "n2"] && detail.task.participants.allSatisfy { $0.state == .completed })
            }
            let served = try #require(deployment.agents["n2"]).participantCalls
            #expect(served.batchedCalls == 300, "every call to n2 went in a batch: \(served)")
            #expect(served.singleCalls == 0)
            #expect(served.batches < served.batchedCalls, "calls made together travelled together: \(served)")
        }
    }

    @Test("one call of a batch is checked against its own grant, and a slow handler holds up no other call: each line comes as its call ends")
    func slowCallHoldsUpNoOther() async throws {
        // n2 runs an agent; n1 is claimed by hand, as its agent would, to get the grants.
        try await Deployment.run(nodes: ["n2"]) { deployment in
            _ = try await deployment.client.registerNode(cluster: "c1", node: "n1", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            let initiator = deployment.client(token: try await deployment.store.mintNodeToken(cluster: "c1", node: "n1"))
            let slow = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "sleep", participatingNodes: ["n1", "n2"],
                                                                                            payload: ["seconds": 2]))
            let quick = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "echo", participatingNodes: ["n1", "n2"],
                                                                                             payload: ["quick": true]))
            let other = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "echo", participatingNodes: ["n1", "n2"]))
            let claimed = try await initiator.poll(cluster: "c1", node: "n1", wait: .seconds(0), limit: 16).tasks
            let byID = Dictionary(uniqueKeysWithValues: claimed.map { ($0.id, $0) })
            func call(_ task: ClaimedTaskObject, grant: String? = nil) -> ParticipantCall {
                ParticipantCall(type: task.task.type, rollback: false, grant: grant ?? task.grant(for: "n2"),
                                request: ParticipantRequest(taskID: task.task.id, clusterID: "c1", attempt: task.task.attempt,
                                                            initiator: "n1", payload: task.task.payload))
            }
            let slowClaim = try #require(byID[slow.id]), quickClaim = try #require(byID[quick.id]), otherClaim = try #require(byID[other.id])
            let batch = ParticipantBatchRequest(calls: [
                call(slowClaim), call(quickClaim),
                // Another task's grant: refused alone.
                call(otherClaim, grant: quickClaim.grant(for: "n2")),
            ])
            let endpoint = try #require(try await deployment.client.nodes(cluster: "c1").first { $0.id == "n2" }?.endpoint)
            var request = HTTPClientRequest(url: endpoint + "/api/v1/participant-calls")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "Authorization", value: "Bearer \(slowClaim.grant(for: "n2"))")
            request.body = .bytes(ByteBuffer(bytes: try APIJSON.encode(batch)))

            let clock = ContinuousClock()
            let sent = clock.now
            let response = try await deployment.client.transport.client.execute(request, timeout: .seconds(30))
            #expect(response.status == .ok)
            #expect(response.headers["content-type"].first == "application/x-ndjson")
            var arrivals: [Int: (line: ParticipantBatchLine, after: Duration)] = [:]
            var buffered = Data()
            for try await part in response.body {
                buffered.append(contentsOf: part.readableBytesView)
                while let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = try APIJSON.decode(ParticipantBatchLine.self, from: Data(buffered[buffered.startIndex..<newline]))
                    buffered = Data(buffered[buffered.index(after: newline)...])
                    arrivals[line.index] = (line, clock.now - sent)
                }
            }
            #expect(arrivals.count == 3)
            let slowLine = try #require(arrivals[0]), quickLine = try #require(arrivals[1]), refused = try #require(arrivals[2])
            #expect(quickLine.line.status == 200 && quickLine.line.result == ["quick": true])
            #expect(quickLine.after < .seconds(1), "the quick call's line came after \(quickLine.after)")
            #expect(refused.line.status == 403, "\(refused.line)")
            #expect(refused.after < .seconds(1))
            #expect(slowLine.line.status == 200)
            #expect(slowLine.after >= .milliseconds(1900), "the slow call's line came after \(slowLine.after)")

            // Without a grant this node trusts in the header, the body is not read at all.
            var anonymous = request
            anonymous.headers.replaceOrAdd(name: "Authorization", value: "Bearer nonsense")
            #expect(try await deployment.client.transport.client.execute(anonymous, timeout: .seconds(10)).status == .unauthorized)
        }
    }
}
