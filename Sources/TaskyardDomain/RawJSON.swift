import Foundation

/// One JSON value kept as the bytes it came in: task payloads and results travel from the submitting client
/// to PostgreSQL, from PostgreSQL to the agents, and from one agent to another without ever being read into
/// a tree and written again. Where a program needs the value (a handler, a test), `value` reads it.
///
/// Bytes from a request are checked by `JSONShapeWalk` (the one walk that both validates and measures them)
/// before they are kept; bytes PostgreSQL wrote (jsonb's text) are valid by construction. Two raw values are
/// equal when they hold the same JSON value, however it is spelled.
public struct RawJSON: Sendable {
    /// The UTF-8 text of one JSON value, without surrounding whitespace.
    public let bytes: [UInt8]
    /// What the walk measured, when these bytes came through one.
    private let measured: JSONValue.Shape?

    /// Bytes known to be one valid JSON value: jsonb text from PostgreSQL, or a slice the walk accepted.
    public init(trusted bytes: [UInt8], shape: JSONValue.Shape? = nil) {
        self.bytes = bytes
        self.measured = shape
    }

    /// The value written compactly (keys sorted, as `JSONWriter` writes every message).
    public init(_ value: JSONValue) {
        var json = JSONWriter(capacity: 64)
        json.value(value)
        self.init(trusted: json.bytes)
    }

    /// An object of raw values (a fan-out's results by node), its keys sorted as every message writes them.
    public init(members: [(String, RawJSON)]) {
        var json = JSONWriter(capacity: 64 + members.reduce(0) { $0 + $1.0.utf8.count + $1.1.bytes.count + 4 })
        json.object { json in
            for (key, value) in members.sorted(by: { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars) }) {
                json.key(escaping: key)
                json.raw(value)
            }
        }
        self.init(trusted: json.bytes)
    }

    /// `bytes` when they are exactly one valid JSON value (surrounding whitespace dropped), or nil.
    public init?(validating bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int = 512) {
        var walk = JSONShapeWalk(bytes: bytes, maximumDepth: maximumDepth)
        walk.skipWhitespace()
        let start = walk.index
        guard walk.value(depth: 0) else { return nil }
        let end = walk.index
        walk.skipWhitespace()
        guard walk.index == bytes.count else { return nil }
        self.init(trusted: Array(bytes[start..<end]), shape: walk.shape)
    }

    public init?(validating text: String, maximumDepth: Int = 512) {
        var text = text
        guard let raw = text.withUTF8({ RawJSON(validating: $0, maximumDepth: maximumDepth) }) else { return nil }
        self = raw
    }

    public static let emptyObject = RawJSON(trusted: Array("{}".utf8))
    public static let null = RawJSON(trusted: Array("null".utf8))

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// The value, read from the bytes.
    public var value: JSONValue {
        if let value = bytes.withUnsafeBufferPointer({ JSONParser.parse($0) }) { return value }
        // What the quick parser leaves (exponents, numbers past Int64 and Double's exact range, duplicate keys):
        // Foundation's decoder, as every other reading of JSON here falls back to.
        return (try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))) ?? .null
    }

    /// Depth, size and NULs: measured once by the walk that accepted the bytes, or walked now.
    public func shape(maximumDepth: Int = 512) -> JSONValue.Shape {
        if let measured { return measured }
        return bytes.withUnsafeBufferPointer { buffer in
            var walk = JSONShapeWalk(bytes: buffer, maximumDepth: maximumDepth)
            _ = walk.value(depth: 0)
            return walk.shape
        }
    }

    public var isNull: Bool { bytes.elementsEqual("null".utf8) }
    /// Nil for JSON's null: an answer or report whose result is null has none.
    public var unlessNull: RawJSON? { isNull ? nil : self }
    public var isObject: Bool { bytes.first == UInt8(ascii: "{") }

    public subscript(key: String) -> JSONValue? { value[key] }
}

extension RawJSON: Hashable {
    public static func == (lhs: RawJSON, rhs: RawJSON) -> Bool { lhs.bytes == rhs.bytes || lhs.value == rhs.value }
    public func hash(into hasher: inout Hasher) { value.hash(into: &hasher) }
}

extension RawJSON: Codable {
    public init(from decoder: any Decoder) throws { self.init(try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

extension RawJSON: CustomStringConvertible {
    public var description: String { text }
}

extension RawJSON: ExpressibleByDictionaryLiteral, ExpressibleByArrayLiteral, ExpressibleByStringLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral, ExpressibleByFloatLiteral
{
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(.object(Dictionary(elements, uniquingKeysWith: { _, last in last })))
    }
    public init(arrayLiteral elements: JSONValue...) { self.init(.array(elements)) }
    public init(stringLiteral value: String) { self.init(.string(value)) }
    public init(integerLiteral value: Int64) { self.init(.integer(value)) }
    public init(booleanLiteral value: Bool) { self.init(.bool(value)) }
    public init(floatLiteral value: Double) { self.init(.double(value)) }
}

/// Walks one JSON value in its bytes without building anything: checks that it is valid JSON that PostgreSQL's
/// jsonb will take (UTF-8, escapes and surrogate pairs, the number grammar with an exponent PostgreSQL's
/// numeric holds) and measures it (`JSONValue.Shape`: depth, compact size, NULs) on the way. A value nested
/// deeper than `maximumDepth` is refused, so hostile input costs no more stack than valid input.
public struct JSONShapeWalk {
    let bytes: UnsafeBufferPointer<UInt8>
    let maximumDepth: Int
    public private(set) var index: Int
    public private(set) var shape = JSONValue.Shape()

    /// PostgreSQL's numeric holds exponents up to about ±131,000; past this the cast would fail.
    static let largestExponent = 100_000

    public init(bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int, at index: Int = 0) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
        self.index = index
    }

    public mutating func skipWhitespace() { JSONLexing.skipWhitespace(in: bytes, at: &index) }

    /// Walks the value at `index` (whitespace before it skipped), leaving `index` just past it.
    public mutating func value(depth: Int) -> Bool {
        skipWhitespace()
        guard index < bytes.count else { return false }
        switch bytes[index] {
        case UInt8(ascii: "{"): return container(depth: depth, closing: UInt8(ascii: "}"), isObject: true)
        case UInt8(ascii: "["): return container(depth: depth, closing: UInt8(ascii: "]"), isObject: false)
        case UInt8(ascii: "\""): return string()
        case UInt8(ascii: "t"): return literal("true")
        case UInt8(ascii: "f"): return literal("false")
        case UInt8(ascii: "n"): return literal("null")
        default: return number()
        }
    }

    private mutating func container(depth: Int, closing: UInt8, isObject: Bool) -> Bool {
        guard depth < maximumDepth else { return false }
        shape.depth = max(shape.depth, depth + 1)
        index += 1
        shape.bytes += 2
        skipWhitespace()
        if index < bytes.count, bytes[index] == closing {
            index += 1
            return true
        }
        while true {
            if isObject {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\""), string() else { return false }
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return false }
                index += 1
                shape.bytes += 1
            }
            guard value(depth: depth + 1) else { return false }
            skipWhitespace()
            guard index < bytes.count else { return false }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                shape.bytes += 1
            } else if bytes[index] == closing {
                index += 1
                return true
            } else {
                return false
            }
        }
    }

    private mutating func literal(_ word: StaticString) -> Bool {
        guard JSONLexing.literal(word, in: bytes, at: &index) else { return false }
        shape.bytes += word.utf8CodeUnitCount
        return true
    }

    /// At the opening quote.
    private mutating func string() -> Bool {
        let start = index
        index += 1
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                shape.bytes += index - start
                return true
            case UInt8(ascii: "\\"):
                guard escape() else { return false }
            case 0..<0x20:
                return false
            case 0x80...:
                guard utf8Sequence() else { return false }
            default:
                index += 1
            }
        }
        return false
    }

    /// At the backslash.
    private mutating func escape() -> Bool {
        guard index + 1 < bytes.count else { return false }
        let escaped = bytes[index + 1]
        index += 2
        switch escaped {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
             UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            return true
        case UInt8(ascii: "u"):
            guard let unit = hex4() else { return false }
            switch unit {
            case 0: shape.containsNUL = true
            case 0xD800..<0xDC00:
                guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else { return false }
                index += 2
                guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return false }
            case 0xDC00..<0xE000: return false
            default: break
            }
            return true
        default:
            return false
        }
    }

    private mutating func hex4() -> UInt32? { JSONLexing.hex4(in: bytes, at: &index) }

    /// One multi-byte UTF-8 sequence at `index`, well formed (no overlong forms, no surrogates, at most U+10FFFF).
    private mutating func utf8Sequence() -> Bool {
        let lead = bytes[index]
        let count: Int
        var second: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: count = 1
        case 0xE0: count = 2; second = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: count = 2
        case 0xED: count = 2; second = 0x80...0x9F
        case 0xF0: count = 3; second = 0x90...0xBF
        case 0xF1...0xF3: count = 3
        case 0xF4: count = 3; second = 0x80...0x8F
        default: return false
        }
        guard index + count < bytes.count, second.contains(bytes[index + 1]) else { return false }
        for offset in stride(from: 2, through: count, by: 1) where !(0x80...0xBF).contains(bytes[index + offset]) { return false }
        index += count + 1
        return true
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`. Its size counts the exponent's digits as PostgreSQL
    /// writes them out (`1e300` comes back as 301 digits), so that the size limit bounds what a read returns.
    private mutating func number() -> Bool {
        let start = index
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        let integerStart = index
        skipDigits()
        guard index > integerStart, index - integerStart == 1 || bytes[integerStart] != UInt8(ascii: "0") else { return false }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            let fractionStart = index
            skipDigits()
            guard index > fractionStart else { return false }
        }
        var exponent = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            let exponentStart = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                exponent = exponent * 10 + Int(bytes[index] - UInt8(ascii: "0"))
                guard exponent <= Self.largestExponent else { return false }
                index += 1
            }
            guard index > exponentStart else { return false }
        }
        shape.bytes += index - start + exponent
        return true
    }

    private mutating func skipDigits() {
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
    }
}

/// The pieces of JSON's grammar the parser and the walk both read, one way.
enum JSONLexing {
    /// Past spaces, tabs and line breaks.
    static func skipWhitespace(in bytes: UnsafeBufferPointer<UInt8>, at index: inout Int) {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    /// `word` at `index` (moved past it), or false with `index` unchanged.
    static func literal(_ word: StaticString, in bytes: UnsafeBufferPointer<UInt8>, at index: inout Int) -> Bool {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { return false }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { return false }
        index += count
        return true
    }

    /// Four hex digits at `index` (moved past them): the code unit of a `\u` escape.
    static func hex4(in bytes: UnsafeBufferPointer<UInt8>, at index: inout Int) -> UInt32? {
        guard index + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }
}
