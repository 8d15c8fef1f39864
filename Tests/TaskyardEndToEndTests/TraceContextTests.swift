import Foundation
import Testing
import TaskyardAPI
import TaskyardDomain
import TaskyardTestSupport

/// W3C trace context: a `traceparent` on submit is kept with the task and reaches every participant's
/// handler, so the user's own tracing can follow a task across nodes.
@Suite("Trace context")
struct TraceContextTests {
    static let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test("traceparent on submit is in the task and in TRACEPARENT of the handler on every node; a bad one is 422")
    func traceparentReachesHandlers() async throws {
        let folder = try TestEnvironment.makeExecutables([
            "traced": #"""
                #!/bin/sh
                cat > /dev/null
                if [ -n "${TRACEPARENT+x}" ]; then set=true; else set=false; fi
                printf '{"traceparent": "%s", "set": %s}\n' "$TRACEPARENT" "$set"
                """#,
        ])
        defer { try? FileManager.default.removeItem(at: folder) }
        try await Deployment.run(nodes: ["n1", "n2", "n3"], agentSettings: { $0.handlersDirectory = folder }) { deployment in
            let body = #"{"type": "traced", "participating_nodes": ["n1", "n2", "n3"]}"#
            let submitted = try await APIContractTests.send(deployment, "POST", "/api/v1/clusters/c1/tasks", body: body,
                                                            headers: ["traceparent": Self.traceparent])
            #expect(submitted.status == 201)
            let task = try APIJSON.decode(TaskObject.self, from: submitted.body)
            #expect(task.traceparent == Self.traceparent)

            let detail = try await deployment.finished(task.id)
            #expect(detail.task.state == .completed)
            #expect(detail.task.traceparent == Self.traceparent)
            // n1 ran its part in-process, n2 and n3 through their endpoints.
            #expect(detail.task.participants.count == 3)
            for participant in detail.task.participants {
                #expect(participant.result == ["traceparent": .string(Self.traceparent), "set": true], "\(participant.node): \(String(describing: participant.result))")
            }

            // Batches carry it to each task; a task without one has none, and its handlers see none.
            let batch = try await APIContractTests.send(deployment, "POST", "/api/v1/clusters/c1/tasks/batch",
                                                        body: #"{"tasks": [{"type": "traced", "participating_nodes": ["n2"]}]}"#,
                                                        headers: ["traceparent": Self.traceparent])
            #expect(try APIJSON.decode(TaskBatch.self, from: batch.body).tasks.map(\.traceparent) == [Self.traceparent])
            let plain = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "traced", participatingNodes: ["n1", "n2"]))
            #expect(plain.traceparent == nil)
            let untraced = try await deployment.finished(plain.id)
            #expect(untraced.task.participants.allSatisfy { $0.result == ["traceparent": "", "set": false] }, "\(untraced.task.participants.map(\.result))")

            for bad in ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"] {
                let refused = try await APIContractTests.send(deployment, "POST", "/api/v1/clusters/c1/tasks", body: body,
                                                              headers: ["traceparent": bad])
                #expect(refused.status == 422, "\(bad)")
                #expect(try APIJSON.decode(ErrorBody.self, from: refused.body).error.field == "traceparent", "\(bad)")
            }
            // An empty header is no trace context.
            let empty = try await APIContractTests.send(deployment, "POST", "/api/v1/clusters/c1/tasks", body: body, headers: ["traceparent": ""])
            #expect(empty.status == 201)
            #expect(try APIJSON.decode(TaskObject.self, from: empty.body).traceparent == nil)
            // A later version may add fields.
            let later = try await APIContractTests.send(deployment, "POST", "/api/v1/clusters/c1/tasks", body: body,
                                                        headers: ["traceparent": "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later"])
            #expect(later.status == 201)
        }
    }
}
