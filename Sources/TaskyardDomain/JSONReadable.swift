import Foundation

/// A message read by hand from its parsed `JSONNode` (payloads and results kept as raw bytes), for the hot
/// paths, instead of through Foundation's decoder. `read` must give exactly what the type's `Decodable` conformance gives for the same JSON, or
/// throw `JSONUnreadable` — then the caller decodes with Foundation after all, so that every refusal (and
/// its message naming the field) stays the decoder's. A test holds the two to the same values.
public protocol JSONReadable: Decodable {
    static func read(_ json: JSONNode) throws(JSONUnreadable) -> Self
}

/// Not read by hand: leave it to the decoder.
public struct JSONUnreadable: Error {
    public init() {}
}

extension JSONReadable {
    /// Parses and reads `bytes`, or nil where the decoder must decide.
    public static func read(bytes: UnsafeBufferPointer<UInt8>) -> Self? {
        guard let json = JSONParser.parseMessage(bytes) else { return nil }
        return try? read(json)
    }
}

/// An object's fields as the synthesized `Decodable` reads them: a required field must be there and of its
/// type (null only where the type itself is `JSONValue` or `RawJSON`); an optional one may be missing or null.
public struct JSONFields {
    public let members: [String: JSONNode]

    public init(_ json: JSONNode) throws(JSONUnreadable) {
        guard case .object(let members) = json else { throw JSONUnreadable() }
        self.members = members
    }

    public func required<T>(_ key: String, _ read: (JSONNode) throws(JSONUnreadable) -> T) throws(JSONUnreadable) -> T {
        guard let value = members[key] else { throw JSONUnreadable() }
        return try read(value)
    }

    public func optional<T>(_ key: String, _ read: (JSONNode) throws(JSONUnreadable) -> T) throws(JSONUnreadable) -> T? {
        guard let value = members[key], !value.isNull else { return nil }
        return try read(value)
    }

    /// A required array, each element read by `element`.
    public func requiredArray<T>(_ key: String, _ element: (JSONNode) throws(JSONUnreadable) -> T) throws(JSONUnreadable) -> [T] {
        try required(key) { (json) throws(JSONUnreadable) in try Self.array(json, element) }
    }

    /// An optional array, each element read by `element`.
    public func optionalArray<T>(_ key: String, _ element: (JSONNode) throws(JSONUnreadable) -> T) throws(JSONUnreadable) -> [T]? {
        try optional(key) { (json) throws(JSONUnreadable) in try Self.array(json, element) }
    }

    // Readers of one value, for `required` and `optional`.

    public static func string(_ json: JSONNode) throws(JSONUnreadable) -> String {
        guard case .scalar(.string(let text)) = json else { throw JSONUnreadable() }
        return text
    }

    public static func int(_ json: JSONNode) throws(JSONUnreadable) -> Int {
        guard case .scalar(.integer(let number)) = json else { throw JSONUnreadable() }
        return Int(number)
    }

    public static func int64(_ json: JSONNode) throws(JSONUnreadable) -> Int64 {
        guard case .scalar(.integer(let number)) = json else { throw JSONUnreadable() }
        return number
    }

    public static func double(_ json: JSONNode) throws(JSONUnreadable) -> Double {
        switch json {
        case .scalar(.integer(let number)): return Double(number)
        case .scalar(.double(let number)): return number
        default: throw JSONUnreadable()
        }
    }

    public static func bool(_ json: JSONNode) throws(JSONUnreadable) -> Bool {
        guard case .scalar(.bool(let flag)) = json else { throw JSONUnreadable() }
        return flag
    }

    /// As the API's date strategy reads one: an RFC 3339 string.
    public static func date(_ json: JSONNode) throws(JSONUnreadable) -> Date {
        guard case .scalar(.string(let text)) = json, let date = RFC3339.parse(text) else { throw JSONUnreadable() }
        return date
    }

    /// Any value, null included, as `JSONValue`'s own `Decodable` reads it.
    public static func value(_ json: JSONNode) -> JSONValue { json.value }

    /// Any value, null included, as the bytes that came where the message kept them (payloads, results).
    public static func raw(_ json: JSONNode) -> RawJSON { json.raw }

    public static func strings(_ json: JSONNode) throws(JSONUnreadable) -> [String] {
        try array(json, string)
    }

    /// An object whose every value is a string.
    public static func stringsByKey(_ json: JSONNode) throws(JSONUnreadable) -> [String: String] {
        guard case .object(let members) = json else { throw JSONUnreadable() }
        var values: [String: String] = [:]
        values.reserveCapacity(members.count)
        for (key, value) in members { values[key] = try string(value) }
        return values
    }

    public static func array<T>(_ json: JSONNode, _ element: (JSONNode) throws(JSONUnreadable) -> T) throws(JSONUnreadable) -> [T] {
        guard case .array(let elements) = json else { throw JSONUnreadable() }
        var values: [T] = []
        values.reserveCapacity(elements.count)
        for value in elements { values.append(try element(value)) }
        return values
    }

    public static func enumeration<T: RawRepresentable>(_ json: JSONNode) throws(JSONUnreadable) -> T where T.RawValue == String {
        guard case .scalar(.string(let text)) = json, let value = T(rawValue: text) else { throw JSONUnreadable() }
        return value
    }
}

extension ParticipantRollback: JSONReadable {
    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> ParticipantRollback {
        let fields = try JSONFields(json)
        return ParticipantRollback(state: try fields.required("state", JSONFields.enumeration),
                                   result: try fields.optional("result", JSONFields.value),
                                   error: try fields.optional("error", JSONFields.string))
    }
}
