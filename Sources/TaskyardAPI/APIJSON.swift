import Foundation
import TaskyardDomain

/// JSON as the HTTP contract writes it: snake_case keys (declared per type), RFC 3339 UTC times with
/// milliseconds, sorted keys so that bodies compare byte for byte.
public enum APIJSON {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(RFC3339.format(date))
        }
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = RFC3339.parse(text) else {
                throw DecodingError.dataCorruptedError(in: container,
                                                       debugDescription: "expected an RFC 3339 time such as 2026-11-23T10:15:30Z, got \(text)")
            }
            return date
        }
        return decoder
    }

    public static func encode<T: Encodable>(_ value: T) throws -> Data { try encoder().encode(value) }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try decoder().decode(type, from: data)
    }
}

/// RFC 3339 times: written as UTC with milliseconds (`2026-11-23T10:15:30.123Z`), read with or without
/// fractional seconds and with any offset.
public enum RFC3339 {
    public static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// nil unless `text` is an RFC 3339 time in the years 1 to 9999.
    public static func parse(_ text: String) -> Date? {
        guard let date = parseAnyYear(text), DateRange.contains(date) else { return nil }
        return date
    }

    private static func parseAnyYear(_ text: String) -> Date? {
        // Four-digit years only: the formatters below also read "+10000-…" and "0000-…".
        let bytes = Array(text.utf8.prefix(5))
        guard bytes.count == 5, bytes[0..<4].allSatisfy({ $0 >= 48 && $0 <= 57 }), bytes[4] == 45 else { return nil }
        if let date = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) { return date }
        if let date = try? Date(text, strategy: Date.ISO8601FormatStyle()) { return date }
        // Offsets other than Z.
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }
}

/// The JSON path of a decoding error: `tasks[3].participating_nodes[1]`.
public func jsonPath(_ codingPath: [any CodingKey]) -> String {
    var path = ""
    for key in codingPath {
        if let index = key.intValue, key.stringValue.hasPrefix("Index ") || Int(key.stringValue) == index {
            path += "[\(index)]"
        } else {
            path += path.isEmpty ? key.stringValue : ".\(key.stringValue)"
        }
    }
    return path
}
