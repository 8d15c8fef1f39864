import Foundation
import Testing
import TaskyardDomain

@Suite("Validation")
struct ValidationTests {
    func field(of submission: TaskSubmission, prefix: String = "") -> String? {
        do {
            try submission.validate(fieldPrefix: prefix)
            return nil
        } catch {
            #expect(error.kind == .invalid)
            return error.field
        }
    }

    @Test("identifiers: 1–64 characters from A-Z a-z 0-9 . _ -")
    func identifiers() {
        #expect(Identifier.isValid("n1"))
        #expect(Identifier.isValid("node-1.rack_2"))
        #expect(Identifier.isValid(String(repeating: "a", count: 64)))
        #expect(!Identifier.isValid(""))
        #expect(!Identifier.isValid(String(repeating: "a", count: 65)))
        #expect(!Identifier.isValid("n 1"))
        #expect(!Identifier.isValid("n/1"))
        #expect(!Identifier.isValid("nœud"))
    }

    @Test("keys that travel as headers may not start or end with a space or tab (HTTP would trim them)")
    func headerKeysKeepTheirEdges() {
        let base = TaskSubmission(type: "noop", participatingNodes: ["n1"])
        for bad in [" k", "k ", "\tk", "k\t"] {
            var keyed = base
            keyed.idempotencyKey = bad
            #expect(field(of: keyed) == "Idempotency-Key", "\(bad.debugDescription)")
            #expect(field(of: keyed, prefix: "tasks[0].") == "tasks[0].idempotency_key")
            var opaque = base
            opaque.opaqueID = bad
            #expect(field(of: opaque) == "X-Opaque-Id", "\(bad.debugDescription)")
        }
        var inner = base
        inner.idempotencyKey = "a b"
        inner.opaqueID = "ticket 7"
        #expect(field(of: inner) == nil)
        #expect(throws: TaskyardError.self) { try TaskFilter(opaqueID: " x").validate() }
    }

    @Test("a valid submission passes")
    func valid() {
        #expect(field(of: TaskSubmission(type: "volume_create", participatingNodes: ["n1", "n2"],
                                         payload: ["name": "vol1"], maxAttempts: 5, timeoutSeconds: 60)) == nil)
    }

    @Test("each broken rule names its field")
    func namesTheField() {
        #expect(field(of: TaskSubmission(type: "bad type", participatingNodes: ["n1"])) == "type")
        #expect(field(of: TaskSubmission(type: "t", participatingNodes: [])) == "participating_nodes")
        #expect(field(of: TaskSubmission(type: "t", participatingNodes: ["n1", "bad node"])) == "participating_nodes[1]")
        #expect(field(of: TaskSubmission(type: "t", participatingNodes: ["n1", "n1"])) == "participating_nodes[1]")
        #expect(field(of: TaskSubmission(type: "t", participatingNodes: ["n1"], payload: [1, 2])) == "payload")
        #expect(field(of: TaskSubmission(type: "t", participatingNodes: ["n1"], maxAttempts: 0)) == "max_attempts")
        #expect(field(of: TaskSubmission(type: "t", participatingNodes: ["n1"], timeoutSeconds: 0)) == "timeout_seconds")
        #expect(field(of: TaskSubmission(type: "t", participatingNodes: ["n1"], priority: Int(Int32.max) + 1)) == "priority")
        #expect(field(of: TaskSubmission(type: "t", participatingNodes: ["n1"], orderingKey: "")) == "ordering_key")
        #expect(field(of: TaskSubmission(type: "t", participatingNodes: ["n1"], parentID: 0)) == "parent_id")
        #expect(field(of: TaskSubmission(type: "t", participatingNodes: ["n1"], idempotencyKey: String(repeating: "k", count: 256))) == "Idempotency-Key")
        #expect(field(of: TaskSubmission(type: "x y", participatingNodes: ["n1"]), prefix: "tasks[3].") == "tasks[3].type")
    }

    @Test("a report: participants must be participating nodes, once each; completed means the completion policy was met")
    func reports() {
        let nodes = ["n1", "n2"]
        func field(_ report: TaskReport) -> String? {
            do { try report.validate(participatingNodes: nodes); return nil } catch { return error.field }
        }
        #expect(field(TaskReport(attempt: 1, lease: "l", state: .completed, participants: [
            ParticipantOutcome(node: "n1", state: .completed), ParticipantOutcome(node: "n2", state: .completed)])) == nil)
        #expect(field(TaskReport(attempt: 0, lease: "l", state: .completed)) == "attempt")
        #expect(field(TaskReport(attempt: 1, lease: "l", state: .failed, participants: [ParticipantOutcome(node: "n9", state: .failed)]))
            == "participants[0].node")
        #expect(field(TaskReport(attempt: 1, lease: "l", state: .failed, participants: [
            ParticipantOutcome(node: "n1", state: .failed), ParticipantOutcome(node: "n1", state: .failed)])) == "participants[1].node")
        let oneFailed = TaskReport(attempt: 1, lease: "l", state: .completed, participants: [
            ParticipantOutcome(node: "n1", state: .completed), ParticipantOutcome(node: "n2", state: .failed)])
        #expect(field(oneFailed) == "participants", "under all, a failed participant fails the task")
        #expect((try? oneFailed.validate(participatingNodes: nodes, completeWhen: .any)) != nil, "under any, one success completes it")
    }

    @Test("list filters and cursors")
    func filters() throws {
        #expect(throws: TaskyardError.self) { try TaskFilter(limit: 0).validate() }
        #expect(throws: TaskyardError.self) { try TaskFilter(limit: 1001).validate() }
        #expect(try TaskCursor("42").lastID == 42)
        #expect(throws: TaskyardError.self) { try TaskCursor("nope") }
    }

    @Test("JSON values keep 64-bit integers exact")
    func jsonIntegers() throws {
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(#"{"id": 9007199254740993, "ratio": 0.5}"#.utf8))
        #expect(value["id"] == .integer(9_007_199_254_740_993))
        #expect(value["ratio"] == .double(0.5))
    }
}

@Suite("Completion policy")
struct CompletionPolicyTests {
    @Test("reads the four forms, and refuses anything else naming the field")
    func reading() throws {
        #expect(try CompletionPolicy(json: "all") == .all)
        #expect(try CompletionPolicy(json: "any") == .any)
        #expect(try CompletionPolicy(json: "quorum") == .quorum)
        #expect(try CompletionPolicy(json: ["at_least": 2]) == .atLeast(2))
        #expect(try CompletionPolicy(json: ["at_least": 2.0]) == .atLeast(2), "a whole number written with a point")
        for bad: JSONValue in ["most", ["at_least": 0], ["at_least": 1.5], ["at_least": 300], ["at_least": 2, "x": 1], 3, .null] {
            #expect(throws: TaskyardError.self, "\(bad)") { try CompletionPolicy(json: bad, field: "tasks[1].complete_when") }
        }
        let tooMany = try #require(throws: TaskyardError.self) {
            try TaskSubmission(type: "t", participatingNodes: ["n1", "n2"], completeWhen: .atLeast(3)).validate()
        }
        #expect(tooMany.field == "complete_when.at_least")
    }

    @Test("successes required: all of them, one, a strict majority, N; stored and read back the same")
    func required() {
        #expect([1, 2, 3, 4, 5].map { CompletionPolicy.quorum.required(of: $0) } == [1, 2, 2, 3, 3])
        #expect(CompletionPolicy.all.required(of: 4) == 4 && CompletionPolicy.any.required(of: 4) == 1)
        for policy in [CompletionPolicy.all, .any, .quorum, .atLeast(7)] {
            #expect(CompletionPolicy(stored: policy.stored) == policy)
        }
    }
}
