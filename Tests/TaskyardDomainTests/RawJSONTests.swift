import Foundation
import Testing
import TaskyardDomain

/// Payloads and results travel as the bytes that came: the walk that accepts them must accept exactly the
/// JSON PostgreSQL's jsonb takes, measure it as the limits count, and a message's raw members must be those
/// very bytes.
@Suite("Raw JSON")
struct RawJSONTests {
    static func raw(_ text: String) -> RawJSON? { RawJSON(validating: text) }
    static func message(_ text: String) -> JSONNode? { Array(text.utf8).withUnsafeBufferPointer { JSONParser.parseMessage($0) } }

    @Test("accepts every valid document the parser reads, keeping its bytes, and reads back the same value")
    func acceptsValidJSON() {
        for _ in 0..<2000 {
            let text = JSONParserTests.randomText(depth: 0)
            guard let value = JSONParser.parse(text) else { continue }
            guard let raw = Self.raw(text) else {
                Issue.record("refused \(text)")
                continue
            }
            #expect(raw.text == text.trimmingCharacters(in: .whitespacesAndNewlines), "only the surrounding whitespace is dropped")
            #expect(raw.value == value)
            #expect(raw == RawJSON(value), "equal by value, however spelled")
        }
    }

    @Test("refuses what jsonb would refuse, and what is not JSON at all")
    func refusals() {
        for text in ["", "{", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "+1", "1e", "1e+", "nul", "NaN", "\"\\x\"", "1 2",
                     "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\u{1}\"", "{\"a\" 1}", "[1 2]",
                     "1e100001", "\"\\u12\""] {
            #expect(Self.raw(text) == nil, "\(text)")
        }
        // Bytes that are not UTF-8: a lone continuation byte, an overlong form, a surrogate, past U+10FFFF, cut short.
        for bytes: [UInt8] in [[0x22, 0x80, 0x22], [0x22, 0xC0, 0xAF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22],
                               [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], [0x22, 0xE2, 0x82, 0x22]] {
            #expect(bytes.withUnsafeBufferPointer { RawJSON(validating: $0) } == nil, "\(bytes)")
        }
        #expect(Self.raw("\"é€😇\"")?.value == "é€😇")
        #expect(Self.raw("\"\\ud83d\\ude07\"")?.value == "😇")
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect(RawJSON(validating: deep, maximumDepth: 32) == nil)
        #expect(RawJSON(validating: deep)?.shape().depth == 40)
    }

    @Test("measures depth, size and NULs as the limits count them")
    func shape() throws {
        let raw = try #require(Self.raw(#" { "a" : [1, {"b": "\u0000"}], "c": 1e300 } "#))
        let shape = raw.shape()
        #expect(shape.depth == 3)
        #expect(shape.containsNUL)
        #expect(shape.bytes > 300, "an exponent counts as the digits PostgreSQL writes it out in")
        let empty = try #require(Self.raw("{}")).shape()
        #expect(empty.depth == 1 && empty.bytes == 2 && !empty.containsNUL)
        var limits = InputLimits()
        limits.jsonDepth = 2
        #expect(throws: TaskyardError.self) { try limits.check(raw, field: "payload", bytes: 1000) }
        let stored = RawJSON(trusted: raw.bytes)
        #expect(stored.shape() == shape, "bytes PostgreSQL wrote measure the same when walked later")
    }

    @Test("a message keeps its payloads and results as the bytes that came, wherever they are")
    func messageKeepsRawMembers() throws {
        let text = #"{"tasks": [{"payload": {"b": 1,  "a": [1.50, 1e2]}, "type": "t"}], "result": null, "progress": {"result": 2}}"#
        let message = try #require(Self.message(text))
        guard case .object(let members) = message, case .array(let tasks)? = members["tasks"], case .object(let task)? = tasks.first,
              case .raw(let payload)? = task["payload"] else {
            Issue.record("\(message)")
            return
        }
        #expect(payload.text == #"{"b": 1,  "a": [1.50, 1e2]}"#)
        #expect(payload.value == ["b": 1, "a": [1.5, 100]])
        #expect(members["result"]?.isNull == true)
        if case .object(let progress)? = members["progress"] { #expect(progress["result"]?.raw.text == "2") } else { Issue.record("progress") }
        #expect(Self.message(#"{"payload": {"a": 01}}"#) == nil, "a raw member is checked")
    }

    @Test("an object of raw values writes its keys sorted and escaped, its values as they came")
    func objectOfRawValues() {
        let results = RawJSON(members: [("n2", Self.raw("{\"x\": 1}")!), ("n\"1", .null)])
        #expect(results.text == #"{"n\"1":null,"n2":{"x": 1}}"#)
    }
}
