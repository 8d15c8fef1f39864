/// Reads JSON text into a `JSONValue`, for the hot paths (payloads and results from the database, claims,
/// reports, submits): a few times faster than `JSONValue`'s `Decodable` path, which tries each kind of
/// value in turn through Foundation's decoder.
///
/// It reads a value only where it is sure to read exactly what that path would, and says nil otherwise:
/// malformed text, a number no Double holds, a lone surrogate, invalid UTF-8,
/// duplicate keys, nesting past `maximumDepth`. A caller falls back to Foundation's decoder on nil, so
/// every refusal and its message stay what they were.
public enum JSONParser {
    public static func parse(_ text: String, maximumDepth: Int = 512) -> JSONValue? {
        var text = text
        return text.withUTF8 { parse($0, maximumDepth: maximumDepth) }
    }

    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int = 512) -> JSONValue? {
        parseTree(bytes, maximumDepth: maximumDepth, rawKeys: [])
    }

    /// A message: its members named `payload` or `result` are not read but kept as the bytes that came
    /// (`RawJSON`, checked by `JSONShapeWalk`), everything else is read as `parse` reads it.
    public static func parseMessage(_ bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int = 512) -> JSONNode? {
        parseTree(bytes, maximumDepth: maximumDepth, rawKeys: JSONNode.rawKeys)
    }

    private static func parseTree<Tree: JSONTree>(_ bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int, rawKeys: [String]) -> Tree? {
        var reader = Reader<Tree>(bytes: bytes, maximumDepth: maximumDepth, rawKeys: rawKeys)
        guard let value = reader.value(depth: 0) else { return nil }
        reader.skipWhitespace()
        guard reader.index == bytes.count else { return nil }
        return value
    }

    private struct Reader<Tree: JSONTree> {
        let bytes: UnsafeBufferPointer<UInt8>
        let maximumDepth: Int
        let rawKeys: [String]
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int, rawKeys: [String]) {
            self.bytes = bytes
            self.maximumDepth = maximumDepth
            self.rawKeys = rawKeys
        }

        mutating func skipWhitespace() { JSONLexing.skipWhitespace(in: bytes, at: &index) }

        mutating func value(depth: Int) -> Tree? {
            skipWhitespace()
            guard index < bytes.count else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "{"): return depth < maximumDepth ? object(depth: depth + 1) : nil
            case UInt8(ascii: "["): return depth < maximumDepth ? array(depth: depth + 1) : nil
            case UInt8(ascii: "\""): return string().map { Tree.scalar(.string($0)) }
            // Not `literal(…) ? .null : nil`: JSONValue is ExpressibleByNilLiteral, so that nil would be `.null`.
            case UInt8(ascii: "t"): return literal("true") ? Tree.scalar(.bool(true)) : Optional.none
            case UInt8(ascii: "f"): return literal("false") ? Tree.scalar(.bool(false)) : Optional.none
            case UInt8(ascii: "n"): return literal("null") ? Tree.scalar(.null) : Optional.none
            default: return number().map(Tree.scalar)
            }
        }

        mutating func literal(_ word: StaticString) -> Bool { JSONLexing.literal(word, in: bytes, at: &index) }

        mutating func object(depth: Int) -> Tree? {
            index += 1
            var members: [String: Tree] = [:]
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return Tree.object(members)
            }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\""), let key = string() else { return nil }
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
                index += 1
                let read = rawKeys.isEmpty || !rawKeys.contains(key) ? value(depth: depth) : raw(depth: depth)
                guard let member = read, members.updateValue(member, forKey: key) == nil else { return nil }
                skipWhitespace()
                guard index < bytes.count else { return nil }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                } else if bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    return Tree.object(members)
                } else {
                    return nil
                }
            }
        }

        mutating func array(depth: Int) -> Tree? {
            index += 1
            var elements: [Tree] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return Tree.array(elements)
            }
            while true {
                guard let element = value(depth: depth) else { return nil }
                elements.append(element)
                skipWhitespace()
                guard index < bytes.count else { return nil }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                } else if bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return Tree.array(elements)
                } else {
                    return nil
                }
            }
        }

        /// A member kept as its bytes: walked (validated and measured), not read.
        mutating func raw(depth: Int) -> Tree? {
            skipWhitespace()
            var walk = JSONShapeWalk(bytes: bytes, maximumDepth: maximumDepth - depth, at: index)
            let start = index
            guard walk.value(depth: 0) else { return nil }
            index = walk.index
            return Tree.raw(RawJSON(trusted: Array(bytes[start..<index]), shape: walk.shape))
        }

        /// At the opening quote.
        mutating func string() -> String? {
            index += 1
            let start = index
            // The common case: no escapes, so the text between the quotes is the string.
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    let text = String(validating: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                    index += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") { break }
                guard byte >= 0x20 else { return nil }
                index += 1
            }
            guard index < bytes.count else { return nil }
            var utf8 = Array(bytes[start..<index])
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return String(validating: utf8, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { return nil }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0C)
                    case UInt8(ascii: "n"): utf8.append(0x0A)
                    case UInt8(ascii: "r"): utf8.append(0x0D)
                    case UInt8(ascii: "t"): utf8.append(0x09)
                    case UInt8(ascii: "u"):
                        guard let unit = hex4() else { return nil }
                        let scalar: Unicode.Scalar?
                        switch unit {
                        case 0xD800..<0xDC00:
                            guard literal("\\u"), let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                            scalar = Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                        case 0xDC00..<0xE000: return nil
                        default: scalar = Unicode.Scalar(unit)
                        }
                        guard let scalar else { return nil }
                        utf8.append(contentsOf: String(Character(scalar)).utf8)
                    default: return nil
                    }
                default:
                    guard byte >= 0x20 else { return nil }
                    utf8.append(byte)
                }
            }
            return nil
        }

        mutating func hex4() -> UInt32? { JSONLexing.hex4(in: bytes, at: &index) }

        /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, as the `Decodable` path reads it: Int64 first — digits
        /// that fit, or a fraction or exponent whose Double is whole (`3.0`, `9.999999999999999999`, `1e2`) — then Double. A whole Double past
        /// 2^53 with a fraction is left to Foundation.
        mutating func number() -> JSONValue? {
            let start = index
            if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
            let integerStart = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            let integerDigits = index - integerStart
            guard integerDigits > 0, integerDigits == 1 || bytes[integerStart] != UInt8(ascii: "0") else { return nil }
            var hasFraction = false
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                hasFraction = true
                index += 1
                let fractionStart = index
                while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
                guard index > fractionStart else { return nil }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                // As a fraction is: Int64 when the Double is whole (`1e2`), Double otherwise (`1e-5`).
                hasFraction = true
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                let exponentStart = index
                while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
                guard index > exponentStart else { return nil }
            }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            if !hasFraction, let integer = Int64(text) { return .integer(integer) }
            guard let double = Double(text), double.isFinite else { return nil }
            if hasFraction, double == double.rounded() {
                // Past 2^53 a whole Double may or may not be the Int64 Foundation reads; past Int64 it is a Double.
                guard abs(double) < 9_007_199_254_740_992 else { return abs(double) >= 9.3e18 ? .double(double) : nil }
                return .integer(Int64(double))
            }
            return .double(double)
        }
    }
}

/// What the parser builds: `JSONValue`, or a message's `JSONNode`.
protocol JSONTree {
    static func scalar(_ value: JSONValue) -> Self
    static func array(_ elements: [Self]) -> Self
    static func object(_ members: [String: Self]) -> Self
    static func raw(_ raw: RawJSON) -> Self
}

extension JSONValue: JSONTree {
    static func scalar(_ value: JSONValue) -> JSONValue { value }
    static func raw(_ raw: RawJSON) -> JSONValue { raw.value }
}

/// A message as `JSONParser.parseMessage` reads it: its structure read, its payloads and results kept raw.
public indirect enum JSONNode: Sendable, JSONTree {
    /// null, a boolean, a number or a string.
    case scalar(JSONValue)
    case array([JSONNode])
    case object([String: JSONNode])
    case raw(RawJSON)

    /// The members a message keeps as bytes, wherever they are.
    static let rawKeys = ["payload", "result"]

    public init(_ value: JSONValue) {
        switch value {
        case .array(let elements): self = .array(elements.map(JSONNode.init))
        case .object(let members): self = .object(members.mapValues(JSONNode.init))
        default: self = .scalar(value)
        }
    }

    /// The value, raw members read.
    public var value: JSONValue {
        switch self {
        case .scalar(let value): value
        case .array(let elements): .array(elements.map(\.value))
        case .object(let members): .object(members.mapValues(\.value))
        case .raw(let raw): raw.value
        }
    }

    /// The bytes of a raw member as they came; anything else written compactly.
    public var raw: RawJSON {
        if case .raw(let raw) = self { return raw }
        return RawJSON(value)
    }

    public var isNull: Bool {
        switch self {
        case .scalar(.null): true
        case .raw(let raw): raw.isNull
        default: false
        }
    }
}
