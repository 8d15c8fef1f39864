import Foundation
import Testing
import TaskyardAgent
import TaskyardAPI
import TaskyardDomain

/// Payloads and results travel as the bytes that came (issue 21): never read into a tree and written again,
/// so numbers stay exact as sent, and what a handler returns is what a reader gets.
@Suite("Payloads and results as they came")
struct RawPayloadTests {
    @Test("a payload's numbers come back exact; handlers get it and return it through real agents, byte for byte")
    func numbersSurviveTheTrip() async throws {
        let received = ReceivedPayloads()
        try await Deployment.run(handlers: { _ in
            var registry = HandlerRegistry.builtins()
            registry.register("keep", ClosureHandler { work in
                await received.add(work.rawPayload)
                return work.payload
            })
            return registry
        }) { deployment in
            // Past Int64 and Double, a fraction written with a zero, an exponent, spacing of the client's own.
            let body = #"{"type": "echo", "participating_nodes": ["n1", "n2", "n3"], "payload": {"big": 123456789012345678901234567890, "price": 1.50,  "tiny": 1e-3}}"#
            let submitted = try await APIContractTests.send(deployment, "POST", "/api/v1/clusters/\(Deployment.cluster)/tasks", body: body)
            #expect(submitted.status == 201, "\(submitted.text)")
            let id = try APIJSON.decode(TaskObject.self, from: submitted.body).id
            let detail = try await deployment.finished(id, within: .seconds(30))
            #expect(detail.task.state == .completed, "\(detail.task.error ?? "")")
            let shown = try await APIContractTests.send(deployment, "GET", "/api/v1/clusters/\(Deployment.cluster)/tasks/\(id)")
            // jsonb's own spelling: its spacing and key order, numbers as sent (1e-3 is the numeric 0.001).
            let payload = #"{"big": 123456789012345678901234567890, "tiny": 0.001, "price": 1.50}"#
            #expect(shown.text.contains(#""payload":\#(payload)"#), "\(shown.text)")
            for node in ["n1", "n2", "n3"] {
                #expect(shown.text.contains(#""\#(node)": \#(payload)"#), "each echo's result is the payload, as it came: \(shown.text)")
            }

            // A handler of its own gets the bytes PostgreSQL wrote; what it returns is stored as its value.
            let kept = try await deployment.client.submit(cluster: Deployment.cluster, SubmitTaskRequest(
                type: "keep", participatingNodes: ["n1", "n2"], payload: try #require(RawJSON(validating: #"{"a":[1,2.50]}"#))))
            let keptDetail = try await deployment.finished(kept.id, within: .seconds(30))
            #expect(keptDetail.task.state == .completed)
            #expect(await received.all.map(\.text) == [#"{"a": [1, 2.50]}"#, #"{"a": [1, 2.50]}"#])
        }
    }

    @Test("what jsonb cannot hold is refused with the field named, never a 500")
    func unstorableNumbers() async throws {
        try await Deployment.run { deployment in
            for payload in [#"{"a": 1e100001}"#, #"{"a": -1E+200000}"#] {
                let body = #"{"type": "noop", "participating_nodes": ["n1"], "payload": \#(payload)}"#
                let answer = try await APIContractTests.send(deployment, "POST", "/api/v1/clusters/\(Deployment.cluster)/tasks", body: body)
                #expect([400, 422].contains(answer.status), "\(payload): \(answer.status) \(answer.text)")
            }
            let exact = #"{"type": "noop", "participating_nodes": ["n1"], "payload": {"a": 1e300}}"#
            let answer = try await APIContractTests.send(deployment, "POST", "/api/v1/clusters/\(Deployment.cluster)/tasks", body: exact)
            #expect(answer.status == 201, "\(answer.text)")
        }
    }
}

actor ReceivedPayloads {
    private(set) var all: [RawJSON] = []
    func add(_ payload: RawJSON) { all.append(payload) }
}
