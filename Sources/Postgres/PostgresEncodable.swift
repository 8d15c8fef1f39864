import Foundation

/// A value bound to a statement parameter, sent in PostgreSQL's text format.
///
/// Values only ever travel as parameters (`$1`, `$2`, …), never inside the SQL text.
public protocol PostgresEncodable: Sendable {
    /// The text form PostgreSQL parses for the parameter's type; `nil` is SQL NULL.
    var postgresText: String? { get }
}

extension String: PostgresEncodable {
    public var postgresText: String? { self }
}

extension Int: PostgresEncodable {
    public var postgresText: String? { String(self) }
}

extension Int64: PostgresEncodable {
    public var postgresText: String? { String(self) }
}

extension Int32: PostgresEncodable {
    public var postgresText: String? { String(self) }
}

extension Bool: PostgresEncodable {
    public var postgresText: String? { self ? "t" : "f" }
}

extension Double: PostgresEncodable {
    public var postgresText: String? {
        if isNaN { return "NaN" }
        if isInfinite { return self < 0 ? "-Infinity" : "Infinity" }
        return "\(self)"
    }
}

extension Date: PostgresEncodable {
    public var postgresText: String? { PostgresTimestamp.format(self) }
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public var postgresText: String? { self?.postgresText }
}

/// A JSON document bound as a parameter (cast it in SQL: `$1::jsonb`), or read from a json/jsonb column.
public struct PostgresJSON: Sendable, Hashable, PostgresEncodable {
    /// The JSON text exactly as PostgreSQL stores or returns it.
    public var text: String

    public init(text: String) { self.text = text }

    public init<T: Encodable>(encoding value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        text = String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }

    public var postgresText: String? { text }
}

extension Array: PostgresEncodable where Element: PostgresEncodable {
    /// A one-dimensional array literal (`{"a","b",NULL}`); cast it in SQL (`$1::text[]`).
    public var postgresText: String? {
        // Built in bytes: an element may be a 256 KiB payload, and appending it scalar by scalar to a String
        // cost more than anything else the server did with it.
        var literal: [UInt8] = [UInt8(ascii: "{")]
        for (index, element) in enumerated() {
            if index > 0 { literal.append(UInt8(ascii: ",")) }
            guard var text = element.postgresText else {
                literal.append(contentsOf: "NULL".utf8)
                continue
            }
            literal.append(UInt8(ascii: "\""))
            text.withUTF8 { utf8 in
                literal.reserveCapacity(literal.count + utf8.count + 8)
                var clean = utf8.startIndex
                for position in utf8.indices where utf8[position] == UInt8(ascii: "\"") || utf8[position] == UInt8(ascii: "\\") {
                    literal.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[clean..<position]))
                    literal.append(UInt8(ascii: "\\"))
                    clean = position
                }
                literal.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[clean...]))
            }
            literal.append(UInt8(ascii: "\""))
        }
        literal.append(UInt8(ascii: "}"))
        return String(decoding: literal, as: UTF8.self)
    }
}
