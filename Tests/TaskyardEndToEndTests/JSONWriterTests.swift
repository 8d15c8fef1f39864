import Foundation
import Testing
import TaskyardAPI
import TaskyardDomain

/// The hot messages are written by `JSONWriter`, everything else by Foundation's encoder: both must write
/// the same bytes, or a client would see two dialects of one contract.
@Suite("JSON writer")
struct JSONWriterTests {
    @Test("task objects, claims, details, lists, batches and polls: the writer's bytes are the encoder's, for 500 random ones")
    func sameBytesAsTheEncoder() throws {
        var random = SystemRandomNumberGenerator()
        for round in 0..<500 {
            let tasks = (0..<Int.random(in: 1...3)).map { _ in Self.randomTask(&random) }
            let claim = ClaimedTaskObject(task: tasks[0], lease: Self.randomString(&random), grants: ["n1": "v1.k.abc", "n2": "v1.k.def"])
            let detail = TaskDetail(task: tasks[0], children: tasks.dropFirst().map(Self.summary))
            func check<T: JSONWritable>(_ value: T, _ what: String) throws {
                let encoded = try APIJSON.encode(value)
                let written = Data(value.jsonBytes)
                #expect(written == encoded, "round \(round), \(what):\n\(String(decoding: written, as: UTF8.self))\n\(String(decoding: encoded, as: UTF8.self))")
            }
            try check(tasks[0], "task")
            try check(claim, "claim")
            try check(detail, "detail")
            try check(TaskList(tasks: tasks, next: round % 2 == 0 ? nil : "42"), "list")
            try check(TaskBatch(tasks: tasks), "batch")
            try check(PollResponse(tasks: [claim], cancel: round % 3 == 0 ? [] : [1, 20, 300]), "poll")
        }
    }

    @Test("every hot message: written as the encoder writes it, read as the decoder reads it — unknown fields, nulls and wrong types included")
    func hotMessagesBothWays() throws {
        var random = SystemRandomNumberGenerator()
        var readByHand = 0, checked = 0
        func check<T: Codable & JSONWritable & JSONReadable>(_ value: T) throws {
            let encoded = try APIJSON.encoder().encode(value)
            #expect(Data(value.jsonBytes) == encoded, "\(T.self):\n\(String(decoding: value.jsonBytes, as: UTF8.self))\n\(String(decoding: encoded, as: UTF8.self))")
            // A double such as 1e+21 is left to the decoder: such a message is read by it alone.
            guard let tree = encoded.withUnsafeBytes({ JSONParser.parse($0.bindMemory(to: UInt8.self)) }) else { return }
            for variant in [tree, Self.mutated(tree, &random, breaking: false), Self.mutated(tree, &random, breaking: true)] {
                var writer = JSONWriter()
                writer.value(variant)
                let text = Data(writer.bytes)
                let byDecoder = try? APIJSON.decoder().decode(T.self, from: text)
                let byHand = text.withUnsafeBytes { T.read(bytes: $0.bindMemory(to: UInt8.self)) }
                checked += 1
                guard let byHand else { continue }
                readByHand += 1
                let decoded = try #require(byDecoder, "read by hand what the decoder refuses: \(T.self) \(String(decoding: text, as: UTF8.self))")
                #expect(try APIJSON.encoder().encode(byHand) == APIJSON.encoder().encode(decoded), "\(T.self): \(String(decoding: text, as: UTF8.self))")
            }
        }
        for _ in 0..<300 {
            let task = Self.randomTask(&random)
            let claim = ClaimedTaskObject(task: task, lease: Self.randomString(&random), grants: ["n1": "v1.k.abc", "n2": "v1.k.def"])
            try check(task)
            try check(claim)
            try check(PollResponse(tasks: [claim, claim], cancel: [7]))
            let submit = SubmitTaskRequest(
                type: "t", participatingNodes: ["n1", Self.randomString(&random)], payload: Bool.random() ? Self.randomRaw(&random) : nil,
                priority: Bool.random() ? Int.random(in: -9...9) : nil, runAfter: Bool.random() ? Self.randomDate(&random) : nil,
                maxAttempts: Bool.random() ? 3 : nil, timeoutSeconds: Bool.random() ? 60 : nil, orderingKey: Bool.random() ? "k" : nil,
                assign: Bool.random() ? .leastLoaded : nil, affinity: Bool.random() ? .strict : nil, parentID: Bool.random() ? 12 : nil,
                abortable: Bool.random() ? false : nil, internal: Bool.random() ? true : nil, idempotencyKey: Bool.random() ? "i" : nil)
            try check(submit)
            try check(SubmitBatchRequest(tasks: [submit, submit]))
            let outcome = ParticipantOutcome(
                node: Self.randomString(&random), state: ReportedState.allCases.randomElement()!, result: Bool.random() ? Self.randomRaw(&random) : nil,
                error: Bool.random() ? Self.randomString(&random) : nil, startedAt: Bool.random() ? Self.randomDate(&random) : nil,
                finishedAt: Bool.random() ? Self.randomDate(&random) : nil,
                rollback: Bool.random() ? ParticipantRollback(state: .failed, result: Bool.random() ? ["x": 1] : nil, error: Bool.random() ? "e" : nil) : nil,
                decided: Bool.random())
            let report = TaskReport(attempt: Int.random(in: 1...5), lease: "l", state: ReportedState.allCases.randomElement()!,
                                    result: Bool.random() ? Self.randomRaw(&random) : nil, error: Bool.random() ? "e" : nil,
                                    participants: Bool.random() ? [outcome, outcome] : [])
            try check(StateReportRequest(report))
            try check(StateReportBatchRequest(reports: [.init(taskID: 5, report: StateReportRequest(report))]))
            let detail = ErrorBody.Detail(code: ErrorCode(rawValue: "c"), message: Self.randomString(&random), field: Bool.random() ? "f" : nil)
            try check(detail)
            try check(StateReportBatchResponse(results: [.init(taskID: 1, status: 200, state: .completed), .init(taskID: 2, status: 409, error: detail)]))
            let request = ParticipantRequest(taskID: 9, clusterID: "c1", attempt: 2, initiator: "n1", payload: Self.randomRaw(&random))
            try check(request)
            let call = ParticipantCall(type: "t", rollback: Bool.random(), grant: "g", request: request)
            try check(call)
            try check(ParticipantBatchRequest(calls: [call, call]))
            try check(ParticipantBatchLine(index: 3, status: [200, 204, 403, 500].randomElement()!,
                                           result: Bool.random() ? Self.randomRaw(&random) : nil, error: Bool.random() ? detail : nil))
        }
        #expect(readByHand > checked / 2, "read by hand \(readByHand) of \(checked)")
    }

    /// Unknown fields added and optional ones made null (`breaking: false`), or a value of the wrong type put in.
    static func mutated(_ json: JSONValue, _ random: inout SystemRandomNumberGenerator, breaking: Bool) -> JSONValue {
        switch json {
        case .object(var members):
            for key in members.keys { members[key] = mutated(members[key]!, &random, breaking: breaking) }
            if !breaking, Int.random(in: 0..<3, using: &random) == 0 { members["later_field"] = randomValue(&random) }
            if breaking, let key = members.keys.randomElement(using: &random), Int.random(in: 0..<4, using: &random) == 0 {
                members[key] = [.string("x"), .integer(1), .bool(true), .array([]), .object([:]), .double(1.5)].randomElement(using: &random)!
            }
            return .object(members)
        case .array(let elements):
            return .array(elements.map { mutated($0, &random, breaking: breaking) })
        default:
            return json
        }
    }

    @Test("a time written and read again is the same millisecond; times print as RFC 3339 UTC with milliseconds")
    func timesRoundTrip() throws {
        for _ in 0..<10_000 {
            let milliseconds = Int64.random(in: -30_000_000_000_000...250_000_000_000_000)
            let date = Date(timeIntervalSince1970: Double(milliseconds) / 1000)
            let text = RFC3339.format(date)
            let again = try #require(RFC3339.parse(text), "\(text)")
            #expect(RFC3339.format(again) == text)
            #expect(abs(again.timeIntervalSince(date)) < 0.001)
        }
        #expect(RFC3339.format(Date(timeIntervalSince1970: 1_713_745_916.158)) == "2024-04-22T00:31:56.158Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: -1.5)) == "1969-12-31T23:59:58.500Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: 0.0009)) == "1970-01-01T00:00:00.000Z", "cut, not rounded")
        #expect(RFC3339.parse("1300-02-03T04:05:06.007Z").map(RFC3339.format) == "1300-02-03T04:05:06.007Z", "before the Gregorian calendar")
    }

    /// A payload or result as a client's bytes would come: compact, keys sorted, each number as it reads back
    /// (`-0.0` as `0`), which is what the encoder writes of the value too. Bytes spelled otherwise travel as
    /// they came: `RawJSONTests` holds that.
    static func randomRaw(_ random: inout SystemRandomNumberGenerator) -> RawJSON { RawJSON(RawJSON(randomValue(&random)).value) }

    static func summary(_ task: TaskObject) -> TaskSummary {
        var summary = try! APIJSON.decode(TaskSummary.self, from: APIJSON.encode(task))
        summary.result = task.result
        return summary
    }

    static func randomString(_ random: inout SystemRandomNumberGenerator) -> String {
        let pieces = ["a", "Z", "_", "/", "\"", "\\", "\n", "\t", "\u{1}", "\u{1f}", "\u{7f}", "é", "€", "😇", "\u{2028}", " ", "9"]
        return (0..<Int.random(in: 0...8, using: &random)).map { _ in pieces.randomElement(using: &random)! }.joined()
    }

    static func randomDate(_ random: inout SystemRandomNumberGenerator) -> Date {
        // Microseconds, as PostgreSQL keeps them.
        Date(timeIntervalSince1970: Double(Int64.random(in: 1_600_000_000_000_000...1_900_000_000_000_000, using: &random)) / 1_000_000)
    }

    static func randomValue(_ random: inout SystemRandomNumberGenerator, depth: Int = 0) -> JSONValue {
        switch Int.random(in: depth > 2 ? 0...4 : 0...6, using: &random) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &random))
        case 2: return .integer(Int64.random(in: Int64.min...Int64.max, using: &random))
        case 3: return .double([0.1, 1.5, -0.0, 3.0, 1e21, 2.5e-5, 123456789.125, Double.random(in: -1e6...1e6, using: &random)].randomElement(using: &random)!)
        case 4: return .string(randomString(&random))
        case 5: return .array((0..<Int.random(in: 0...3, using: &random)).map { _ in randomValue(&random, depth: depth + 1) })
        default:
            let keys = ["a", "b", "A", "_", "a_b", "aB", "a10", "a9", "é", "z", "node", "\u{1}"]
            var object: [String: JSONValue] = [:]
            for _ in 0..<Int.random(in: 0...5, using: &random) {
                object[keys.randomElement(using: &random)!] = randomValue(&random, depth: depth + 1)
            }
            return .object(object)
        }
    }

    static func randomTask(_ random: inout SystemRandomNumberGenerator) -> TaskObject {
        func maybe<T>(_ value: @autoclosure () -> T) -> T? { Bool.random() ? value() : nil }
        var task = try! APIJSON.decode(TaskObject.self, from: Data(#"""
            {"id": 1, "cluster_id": "c1", "type": "t", "state": "queued", "payload": {}, "assigned_node": "n1",
             "participating_nodes": ["n1"], "parent_id": null, "attempt": 0, "max_attempts": 3, "priority": 0,
             "run_after": null, "timeout_seconds": null, "lease_expires_at": null, "ordering_key": null,
             "idempotency_key": null, "opaque_id": null, "traceparent": null, "result": null, "error": null,
             "cancel_requested": false, "abortable": true, "internal": false, "progress": null, "complete_when": "all",
             "concurrency_key": null, "concurrency_limit": null, "waiting_for": null, "schedule_id": null,
             "participants": [], "created_at": "2026-12-01T00:00:00.000Z", "received_at": null, "finished_at": null,
             "updated_at": "2026-12-01T00:00:00.000Z"}
            """#.utf8))
        task.id = Int64.random(in: 1...Int64.max, using: &random)
        task.clusterID = randomString(&random)
        task.type = randomString(&random)
        task.state = TaskState.allCases.randomElement(using: &random)!
        task.payload = randomRaw(&random)
        task.participatingNodes = (0..<Int.random(in: 1...3, using: &random)).map { _ in randomString(&random) }
        task.parentID = maybe(Int64.random(in: 1...1000))
        task.attempt = Int.random(in: 0...5, using: &random)
        task.priority = Int.random(in: -100...100, using: &random)
        task.runAfter = maybe(randomDate(&random))
        task.timeoutSeconds = maybe(Int.random(in: 1...3600))
        task.leaseExpiresAt = maybe(randomDate(&random))
        task.orderingKey = maybe(randomString(&random))
        task.idempotencyKey = maybe(randomString(&random))
        task.opaqueID = maybe(randomString(&random))
        task.traceparent = maybe("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        task.result = maybe(randomRaw(&random))
        task.error = maybe(randomString(&random))
        task.cancelRequested = Bool.random(using: &random)
        task.internal = Bool.random(using: &random)
        task.progress = maybe(["completed": 3, "total": 10])
        task.participants = task.participatingNodes.map { node in
            var participant = try! APIJSON.decode(ParticipantObject.self, from: Data(#"""
                {"node": "n", "attempt": 1, "state": "running", "result": null, "error": null, "started_at": null,
                 "finished_at": null, "rollback": null, "decided": false}
                """#.utf8))
            participant.node = node
            participant.state = ParticipantState.allCases.randomElement()!
            participant.result = maybe(randomRaw(&random))
            participant.error = maybe(randomString(&random))
            participant.startedAt = maybe(randomDate(&random))
            participant.finishedAt = maybe(randomDate(&random))
            participant.rollback = maybe(["state": "completed"])
            participant.decided = Bool.random()
            return participant
        }
        task.createdAt = randomDate(&random)
        task.receivedAt = maybe(randomDate(&random))
        task.finishedAt = maybe(randomDate(&random))
        task.updatedAt = randomDate(&random)
        return task
    }
}
