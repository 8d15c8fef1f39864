import EmbeddedPostgres
import Foundation
import Postgres
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

/// OpenTelemetry spans, as a collector receives them: a server and two agents (processes, each exporting
/// over OTLP/HTTP to a small receiver that reads the spans with OpenTelemetry's own protobuf definitions).
@Suite("Spans")
struct TracingTests {
    /// A span as the receiver wrote it.
    struct Span {
        var service: String
        var traceID: String
        var spanID: String
        var parentSpanID: String
        var name: String
        var attributes: [String: Any]

        init?(_ line: Substring) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let service = object["service"] as? String, let traceID = object["trace_id"] as? String,
                  let spanID = object["span_id"] as? String, let parent = object["parent_span_id"] as? String,
                  let name = object["name"] as? String else { return nil }
            (self.service, self.traceID, self.spanID, parentSpanID, self.name) = (service, traceID, spanID, parent, name)
            attributes = object["attributes"] as? [String: Any] ?? [:]
        }

        func attribute(_ key: String) -> String? {
            switch attributes[key] {
            case let text as String: text
            case let number as NSNumber: number.stringValue
            default: nil
            }
        }
    }

    static let receiver = DocumentationTests.repository.appending(path: "Tests/Tracing/otlp_receiver.py")

    /// The receiver needs `opentelemetry-proto` (CI installs it; the README says how).
    static let receiverAvailable: Bool = {
        (try? Subprocess.capture("/usr/bin/env", ["python3", "-c", "import opentelemetry.proto.collector.trace.v1.trace_service_pb2"])) != nil
    }()

    /// The spans named `name` of a task (on `node`).
    static func spans(_ spans: [Span], _ name: String, task: Int64, node: String? = nil) -> [Span] {
        spans.filter { $0.name == name && $0.attribute("taskyard.task_id") == String(task) && (node == nil || $0.attribute("taskyard.node") == node) }
    }

    /// Every span of both attempts is in: a claim, an attempt, a call to the other node, two handler runs and
    /// two reports each (the agent's and the server's), and the traced task's submit.
    static func complete(_ all: [Span], submitted: Int64, untraced: Int64) -> Bool {
        [submitted, untraced].allSatisfy { id in
            spans(all, "taskyard.claim", task: id).count == 1 && spans(all, "taskyard.attempt", task: id).count == 1
                && spans(all, "taskyard.participant_call", task: id).count == 1 && spans(all, "taskyard.handler", task: id).count == 2
                && spans(all, "taskyard.report", task: id).count == 2
        } && spans(all, "taskyard.submit", task: submitted).count == 1
    }

    /// The spans under `parent`, one a line, indented by depth, children in the order they were received.
    static func tree(of spans: [Span], under parent: String, depth: Int = 0) -> String {
        spans.filter { $0.parentSpanID == parent }.map { span in
            let node = span.attribute("taskyard.node").map { " node=\($0)" } ?? ""
            let line = String(repeating: "  ", count: depth) + "\(span.name) [\(span.service)]\(node) task=\(span.attribute("taskyard.task_id") ?? "-")"
            let below = tree(of: spans, under: span.spanID, depth: depth + 1)
            return below.isEmpty ? line : line + "\n" + below
        }.joined(separator: "\n")
    }

    static func spans(in file: URL) -> [Span] {
        let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap(Span.init)
    }

    @Test("one trace per task attempt, parented on the client's traceparent: submit and claim on the server, the attempt, each participant call, each handler run and the report on the agents, the report on the server",
          .enabled(if: TracingTests.receiverAvailable, "python3 with opentelemetry-proto (pip install opentelemetry-proto) receives the spans"))
    func spanTree() async throws {
        try await TestDatabase.withPrivateServer { database in
            let store = try await database.migratedStore(connections: 2)
            _ = try await store.clusters.createCluster(id: "c1", name: "traces")
            let url = database.configuration().connectionString
            let ports = TestEnvironment.freePorts(4)
            let spansFile = FileManager.default.temporaryDirectory.appending(path: "taskyard-spans-\(UUID().uuidString.prefix(8)).jsonl")
            let receiverLog = FileManager.default.temporaryDirectory.appending(path: "taskyard-otlp-\(UUID().uuidString.prefix(8)).log")
            let receiver = try Subprocess.spawn("/usr/bin/env", ["python3", Self.receiver.path, "--port", String(ports[0]), "--out", spansFile.path],
                                                outputPath: receiverLog.path)
            let otel = ["--otel-endpoint", "http://127.0.0.1:\(ports[0])/v1/traces"]
            let server = try TaskyardProcess.start(["serve", "--key-file", TestEnvironment.keyFilePath, "--database-url", url,
                                                    "--listen", "127.0.0.1:\(ports[1])", "--log-level", "warning"] + otel, name: "traced-serve")
            let serverURL = "http://127.0.0.1:\(ports[1])"
            var agents: [TaskyardProcess] = []
            defer {
                kill(receiver, SIGKILL)
                try? FileManager.default.removeItem(at: spansFile)
                try? FileManager.default.removeItem(at: receiverLog)
            }
            do {
                let admin = try await store.mintToken(scopes: [.admin])
                let client = TaskyardClient(baseURL: serverURL, token: admin)
                try await eventually("the server answers", within: .seconds(60)) { (try? await client.healthBody()) != nil }
                for (index, node) in ["n1", "n2"].enumerated() {
                    agents.append(try await TaskyardProcess.agent(store: store, server: serverURL, node: node, port: ports[2 + index], extra: otel))
                }
                try await eventually("two nodes register", within: .seconds(60)) { try await client.nodes(cluster: "c1").count == 2 }

                // A client's trace: its span id is the parent of the server's submit and claim spans.
                let clientTrace = "0af7651916cd43dd8448eb211c80319c"
                let clientSpan = "b7ad6b7169203331"
                let submitted = try await client.submit(cluster: "c1", SubmitTaskRequest(type: "echo", participatingNodes: ["n1", "n2"], payload: ["x": 1]),
                                                        traceparent: "00-\(clientTrace)-\(clientSpan)-01")
                // And one without: its attempt is a trace of its own, rooted at the claim.
                let untraced = try await client.submit(cluster: "c1", SubmitTaskRequest(type: "echo", participatingNodes: ["n2", "n1"], payload: ["x": 2]))
                for id in [submitted.id, untraced.id] {
                    #expect(try await client.wait(cluster: "c1", id: id, timeout: .seconds(30)).task.state == .completed)
                }


                var spans: [Span] = []
                do {
                    try await eventually("every span of both attempts is exported", within: .seconds(20)) {
                        spans = Self.spans(in: spansFile)
                        return Self.complete(spans, submitted: submitted.id, untraced: untraced.id)
                    }
                } catch {
                    let received = spans.map { "\($0.name) [\($0.service)] task=\($0.attribute("taskyard.task_id") ?? "-")" }
                    Issue.record("received: \(received); receiver: \((try? String(contentsOf: receiverLog, encoding: .utf8)) ?? ""); server: \(server.output.suffix(2000)); agent: \(agents.first?.output.suffix(2000) ?? "")")
                    throw error
                }

                // The traced task: every span in the client's trace, each under the one that caused it.
                let id = submitted.id
                let submit = try #require(Self.spans(spans, "taskyard.submit", task: id).first)
                let claim = try #require(Self.spans(spans, "taskyard.claim", task: id).first)
                let attempt = try #require(Self.spans(spans, "taskyard.attempt", task: id).first)
                let call = try #require(Self.spans(spans, "taskyard.participant_call", task: id).first)
                let ownHandler = try #require(Self.spans(spans, "taskyard.handler", task: id, node: "n1").first)
                let peerHandler = try #require(Self.spans(spans, "taskyard.handler", task: id, node: "n2").first)
                let reports = Self.spans(spans, "taskyard.report", task: id)
                let agentReport = try #require(reports.first { $0.service == "taskyard-agent" })
                let serverReport = try #require(reports.first { $0.service == "taskyard-server" })
                for span in [submit, claim, attempt, call, ownHandler, peerHandler, agentReport, serverReport] {
                    #expect(span.traceID == clientTrace, "\(span.name) on \(span.service)")
                }
                #expect(submit.service == "taskyard-server" && submit.parentSpanID == clientSpan)
                #expect(claim.service == "taskyard-server" && claim.parentSpanID == clientSpan && claim.attribute("taskyard.node") == "n1")
                #expect(attempt.service == "taskyard-agent" && attempt.parentSpanID == claim.spanID && attempt.attribute("taskyard.node") == "n1")
                #expect(call.service == "taskyard-agent" && call.parentSpanID == attempt.spanID && call.attribute("taskyard.node") == "n2")
                #expect(peerHandler.parentSpanID == call.spanID, "n2's handler runs under n1's call to it")
                #expect(ownHandler.parentSpanID == attempt.spanID, "n1's own part runs in-process, under the attempt")
                #expect(agentReport.parentSpanID == attempt.spanID && serverReport.parentSpanID == agentReport.spanID)

                // The tree as received (the README shows it).
                print(Self.tree(of: spans.filter { $0.traceID == clientTrace }, under: clientSpan))

                // The untraced task: its attempt's trace starts at the claim.
                let rootClaim = try #require(Self.spans(spans, "taskyard.claim", task: untraced.id).first)
                #expect(rootClaim.parentSpanID.isEmpty && rootClaim.traceID != clientTrace && rootClaim.attribute("taskyard.node") == "n2")
                let rootAttempt = try #require(Self.spans(spans, "taskyard.attempt", task: untraced.id).first)
                #expect(rootAttempt.traceID == rootClaim.traceID && rootAttempt.parentSpanID == rootClaim.spanID)
                #expect(Self.spans(spans, "taskyard.handler", task: untraced.id).allSatisfy { $0.traceID == rootClaim.traceID })
            } catch {
                for agent in agents { await agent.stop() }
                await server.stop()
                await store.close()
                throw error
            }
            for agent in agents { await agent.stop(SIGTERM) }
            await server.stop(SIGTERM)
            await store.close()
        }
    }
}
