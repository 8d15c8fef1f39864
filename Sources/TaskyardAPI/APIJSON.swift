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

    /// The hot messages are written by `JSONWriter` (the same bytes), the rest by Foundation's encoder.
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        if let writable = value as? any JSONWritable { return Data(writable.jsonBytes) }
        return try encoder().encode(value)
    }

    /// The hot messages are read by hand where they can be (see `JSONReadable`); the rest, and whatever the
    /// hand reading leaves (anything unusual, every error), by Foundation's decoder.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        if let readable = T.self as? any JSONReadable.Type,
           let value = data.withUnsafeBytes({ readable.read(bytes: $0.bindMemory(to: UInt8.self)) }) as? T {
            return value
        }
        return try decoder().decode(type, from: data)
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
