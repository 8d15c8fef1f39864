import Foundation

/// One value of a result row as PostgreSQL sent it (text format), with its column's name and type.
/// Its bytes belong to the result and are valid only during `decode(from:)`.
public struct PostgresCell {
    /// The value's text bytes; nil for SQL NULL.
    public let bytes: UnsafeBufferPointer<UInt8>?
    public let type: PostgresType
    public let column: String

    init(bytes: UnsafeBufferPointer<UInt8>?, type: PostgresType, column: String) {
        self.bytes = bytes
        self.type = type
        self.column = column
    }

    public var string: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    func mismatch(_ swiftType: Any.Type, _ why: String? = nil) -> PostgresError {
        PostgresError(kind: .decoding,
                      message: "column \"\(column)\" of type \(type) cannot be read as \(swiftType)"
                          + (why.map { ": \($0)" } ?? ""))
    }

    func requireBytes(_ swiftType: Any.Type) throws(PostgresError) -> UnsafeBufferPointer<UInt8> {
        guard let bytes else {
            throw PostgresError(kind: .decoding, message: "column \"\(column)\" is NULL; read it as \(swiftType)?")
        }
        return bytes
    }

    func require(_ accepted: [PostgresType], for swiftType: Any.Type) throws(PostgresError) {
        guard accepted.contains(type) else { throw mismatch(swiftType) }
    }
}

/// A Swift type a result column can be read as. Each conformance names the PostgreSQL types it accepts
/// and throws a `.decoding` error naming the column for any other type, or for NULL.
public protocol PostgresDecodable {
    static func decode(from cell: PostgresCell) throws(PostgresError) -> Self
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public static func decode(from cell: PostgresCell) throws(PostgresError) -> Self {
        if cell.bytes == nil { return nil }
        return try Wrapped.decode(from: cell)
    }
}

extension String: PostgresDecodable {
    static let textTypes: [PostgresType] = [.text, .varchar, .bpchar, .name, .char, .unknown]
    public static func decode(from cell: PostgresCell) throws(PostgresError) -> String {
        try cell.require(textTypes, for: String.self)
        return String(decoding: try cell.requireBytes(String.self), as: UTF8.self)
    }
}

private func parseInteger(_ bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
    var index = 0
    var negative = false
    if bytes.first == UInt8(ascii: "-") { negative = true; index = 1 }
    guard index < bytes.count else { return nil }
    var value: Int64 = 0
    while index < bytes.count {
        let digit = bytes[index]
        guard digit >= 48, digit <= 57 else { return nil }
        let (times10, o1) = value.multipliedReportingOverflow(by: 10)
        let (next, o2) = negative ? times10.subtractingReportingOverflow(Int64(digit - 48))
                                  : times10.addingReportingOverflow(Int64(digit - 48))
        if o1 || o2 { return nil }
        value = next
        index += 1
    }
    return value
}

extension Int64: PostgresDecodable {
    public static func decode(from cell: PostgresCell) throws(PostgresError) -> Int64 {
        try cell.require([.int2, .int4, .int8, .oidType], for: Int64.self)
        guard let value = parseInteger(try cell.requireBytes(Int64.self)) else { throw cell.mismatch(Int64.self) }
        return value
    }
}

extension Int: PostgresDecodable {
    public static func decode(from cell: PostgresCell) throws(PostgresError) -> Int {
        Int(try Int64.decode(from: cell))
    }
}

extension Int32: PostgresDecodable {
    public static func decode(from cell: PostgresCell) throws(PostgresError) -> Int32 {
        try cell.require([.int2, .int4], for: Int32.self)
        guard let value = parseInteger(try cell.requireBytes(Int32.self)).flatMap(Int32.init(exactly:)) else {
            throw cell.mismatch(Int32.self)
        }
        return value
    }
}

extension Bool: PostgresDecodable {
    public static func decode(from cell: PostgresCell) throws(PostgresError) -> Bool {
        try cell.require([.bool], for: Bool.self)
        let bytes = try cell.requireBytes(Bool.self)
        switch bytes.first {
        case UInt8(ascii: "t"): return true
        case UInt8(ascii: "f"): return false
        default: throw cell.mismatch(Bool.self)
        }
    }
}

extension Double: PostgresDecodable {
    public static func decode(from cell: PostgresCell) throws(PostgresError) -> Double {
        try cell.require([.float4, .float8, .numeric, .int2, .int4, .int8], for: Double.self)
        let text = String(decoding: try cell.requireBytes(Double.self), as: UTF8.self)
        switch text {
        case "NaN": return .nan
        case "Infinity": return .infinity
        case "-Infinity": return -.infinity
        default:
            guard let value = Double(text) else { throw cell.mismatch(Double.self) }
            return value
        }
    }
}

extension Date: PostgresDecodable {
    public static func decode(from cell: PostgresCell) throws(PostgresError) -> Date {
        // timestamp without time zone is read as UTC, which is what every connection's TimeZone is.
        try cell.require([.timestamptz, .timestamp], for: Date.self)
        guard let date = PostgresTimestamp.parse(try cell.requireBytes(Date.self)) else {
            throw cell.mismatch(Date.self, "unexpected timestamp text \(cell.string ?? "")")
        }
        return date
    }
}

extension PostgresJSON: PostgresDecodable {
    public static func decode(from cell: PostgresCell) throws(PostgresError) -> PostgresJSON {
        try cell.require([.json, .jsonb], for: PostgresJSON.self)
        return PostgresJSON(text: String(decoding: try cell.requireBytes(PostgresJSON.self), as: UTF8.self))
    }
}

extension Array: PostgresDecodable where Element: PostgresDecodable {
    public static func decode(from cell: PostgresCell) throws(PostgresError) -> [Element] {
        guard let elementType = cell.type.arrayElement else { throw cell.mismatch([Element].self) }
        let bytes = try cell.requireBytes([Element].self)
        guard let items = PostgresArrayLiteral.parse(bytes) else {
            throw cell.mismatch([Element].self, "not a one-dimensional array")
        }
        var result: [Element] = []
        result.reserveCapacity(items.count)
        for item in items {
            let element: Element
            if let item {
                element = try item.withUnsafeBufferPointer { buffer throws(PostgresError) in
                    try Element.decode(from: PostgresCell(bytes: buffer, type: elementType, column: cell.column))
                }
            } else {
                element = try Element.decode(from: PostgresCell(bytes: nil, type: elementType, column: cell.column))
            }
            result.append(element)
        }
        return result
    }
}

/// PostgreSQL's text output for one-dimensional arrays: `{a,"b c",NULL,"d\"e"}`.
enum PostgresArrayLiteral {
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> [[UInt8]?]? {
        guard bytes.first == UInt8(ascii: "{"), bytes.last == UInt8(ascii: "}") else { return nil }
        var items: [[UInt8]?] = []
        var index = 1
        let end = bytes.count - 1
        if index == end { return [] }
        while index <= end {
            var item: [UInt8] = []
            if bytes[index] == UInt8(ascii: "\"") {
                index += 1
                while index < end, bytes[index] != UInt8(ascii: "\"") {
                    if bytes[index] == UInt8(ascii: "\\") { index += 1 }
                    guard index < end else { return nil }
                    item.append(bytes[index])
                    index += 1
                }
                guard index < end else { return nil }
                index += 1
                items.append(item)
            } else {
                while index < end, bytes[index] != UInt8(ascii: ",") {
                    if bytes[index] == UInt8(ascii: "{") { return nil }
                    item.append(bytes[index])
                    index += 1
                }
                items.append(item == Array("NULL".utf8) ? nil : item)
            }
            guard index == end || bytes[index] == UInt8(ascii: ",") else { return nil }
            index += 1
        }
        return items
    }
}
