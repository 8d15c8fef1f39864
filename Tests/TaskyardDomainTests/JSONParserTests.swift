import Foundation
import Testing
import TaskyardDomain

/// The parser stands in for `JSONValue`'s `Decodable` path on the hot paths: wherever it reads a value, that
/// path must read the same one; where it cannot be sure, it must say nil (the caller falls back).
@Suite("JSON parser")
struct JSONParserTests {
    /// What `JSONValue`'s `Decodable` reads. At the top level Foundation's decoder reads no null into a
    /// non-optional type; the parser reads it as `.null` (a JSON column may hold one): compare below it.
    static func foundation(_ text: String) -> JSONValue? {
        if let wrapped = try? JSONDecoder().decode([JSONValue].self, from: Data("[\(text)]".utf8)), wrapped.count == 1 { return wrapped[0] }
        return nil
    }

    @Test("reads what JSONValue's Decodable reads, for 3,000 random documents and their mutilations")
    func agreesWithTheDecodablePath() {
        var read = 0
        for _ in 0..<3000 {
            let text = Self.randomText(depth: 0)
            let parsed = JSONParser.parse(text)
            #expect(parsed == Self.foundation(text), "\(text)")
            if parsed != nil { read += 1 }
            // Cut short, or one byte changed: never a value the decoder would not read.
            var bytes = Array(text.utf8)
            if bytes.count > 1 {
                bytes[Int.random(in: 0..<bytes.count)] = Array("{}[],:\"\\ 0-e.xtn\u{1}".utf8).randomElement()!
                let changed = String(decoding: bytes, as: UTF8.self)
                if let value = JSONParser.parse(changed) { #expect(value == Self.foundation(changed), "\(changed)") }
                let cut = String(decoding: bytes.prefix(Int.random(in: 0..<bytes.count)), as: UTF8.self)
                if let value = JSONParser.parse(cut) { #expect(value == Self.foundation(cut), "\(cut)") }
            }
        }
        #expect(read > 2900, "the parser read only \(read) of 3,000 well-formed documents")
    }

    @Test("integers stay integers (64-bit ids survive), fractions are doubles, and what it leaves to Foundation")
    func numbersAndRefusals() {
        #expect(JSONParser.parse("9223372036854775807") == .integer(.max))
        #expect(JSONParser.parse("-9223372036854775808") == .integer(.min))
        #expect(JSONParser.parse("9223372036854775808") == Self.foundation("9223372036854775808"))
        #expect(JSONParser.parse("1.5") == .double(1.5))
        #expect(JSONParser.parse("3.00") == .integer(3), "as Foundation reads it into Int64")
        #expect(JSONParser.parse("-0.0") == Self.foundation("-0.0"))
        #expect(JSONParser.parse("-0") == Self.foundation("-0"))
        #expect(JSONParser.parse(#" {"a": [1, "x\u00e9\ud83d\ude07", null, true]} "#) == ["a": [1, "xé😇", nil, true]])
        #expect(JSONParser.parse("1e3") == .integer(1000), "as Foundation reads it into Int64")
        #expect(JSONParser.parse("2.5e-3") == .double(0.0025))
        #expect(JSONParser.parse("1e300") == .double(1e300))
        #expect(JSONParser.parse("1e19") == Self.foundation("1e19"), "past Int64: a Double")
        #expect(JSONParser.parse("9e18") == nil, "a whole number between 2^53 and Int64's end is left to Foundation")
        for refused in ["1e", "1e+", "2e400", "01", "1.", ".5", "+1", "[1,]", "{\"a\":1,}", "{\"a\":1,\"a\":2}", "\"\\ud800\"", "\"\u{1}\"",
                        "nul", "[", "", "1 2", "\"\\x\"", "NaN", "Infinity"] {
            #expect(JSONParser.parse(refused) == nil, "\(refused)")
        }
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(JSONParser.parse(deep) == nil, "past the maximum depth")
        #expect(JSONParser.parse(String(repeating: "[", count: 10) + String(repeating: "]", count: 10), maximumDepth: 10) != nil)
    }

    static func randomText(depth: Int) -> String {
        let space = ["", " ", "\n", "\t", " \r\n"].randomElement()!
        switch Int.random(in: depth > 3 ? 0...5 : 0...7) {
        case 0: return "null"
        case 1: return Bool.random() ? "true" : "false"
        case 2: return String(Int64.random(in: .min ... .max) >> Int64.random(in: 0...62))
        case 3: return ["0", "-0", "1.5", "-2.25", "0.1", "123456789.125", "3.0", "99999999999999999999", "1.7976931348623157", "0.000001",
                          "1e3", "1E+2", "2.5e-3", "1e300", "-0e0", "1.5e1"].randomElement()!
        case 4, 5:
            let pieces = ["a", "é", "😇", "\\n", "\\\"", "\\\\", "\\/", "\\u00e9", "\\u0000", "\\ud83d\\ude07", "\\t", " ", "\\b", "\\f", "\\r", "€"]
            return "\"" + (0..<Int.random(in: 0...6)).map { _ in pieces.randomElement()! }.joined() + "\""
        case 6:
            return "[" + space + (0..<Int.random(in: 0...4)).map { _ in randomText(depth: depth + 1) }.joined(separator: "," + space) + "]"
        default:
            let keys = Array(Set((0..<Int.random(in: 0...4)).map { _ in ["a", "b", "node", "é", "x_y", "\\u0041"].randomElement()! }))
            return "{" + space + keys.map { "\"\($0)\"" + space + ":" + randomText(depth: depth + 1) }.joined(separator: ",") + space + "}"
        }
    }
}
