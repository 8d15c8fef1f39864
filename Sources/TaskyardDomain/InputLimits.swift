import Foundation

/// The most a request may put into the database, checked before anything is written (422 naming the field).
/// Every size here is also a bound on what a response may carry back: what cannot be stored cannot poison
/// a later read. Each is a server setting (`taskyard serve --limit NAME=VALUE`).
public struct InputLimits: Sendable, Hashable {
    /// A task's payload, as compact JSON. Default 256 KiB.
    public var payloadBytes = 256 * 1024
    /// A reported result (the task's or one participant's), as compact JSON. Default 256 KiB.
    public var resultBytes = 256 * 1024
    /// How deep payloads, results, labels and progress may nest (an object or array is one level).
    /// Default 32.
    public var jsonDepth = 32
    /// A node's labels, as compact JSON. Default 16 KiB.
    public var labelsBytes = 16 * 1024
    /// A reported error message (the task's or one participant's), in characters (Unicode code points, as
    /// JSON Schema's maxLength counts). Default 16384.
    public var errorLength = 16 * 1024
    /// A cancel reason, in characters. Default 1024.
    public var reasonLength = 1024
    /// Cluster names, in characters. Default 255.
    public var nameLength = 255
    /// A page of a task list ends early, with a cursor, once its payloads and results pass this many bytes
    /// (always at least one task). Default 4 MiB.
    public var pageBytes = 4 << 20

    public init() {}

    public static let `default` = InputLimits()

    /// Names for `--limit NAME=VALUE`, with what each bounds.
    public static let settings: [(name: String, keyPath: WritableKeyPath<InputLimits, Int> & Sendable, about: String)] = [
        ("payload_bytes", \.payloadBytes, "task payload, compact JSON bytes"),
        ("result_bytes", \.resultBytes, "reported result, compact JSON bytes"),
        ("json_depth", \.jsonDepth, "nesting of payloads, results, labels and progress"),
        ("labels_bytes", \.labelsBytes, "node labels, compact JSON bytes"),
        ("error_length", \.errorLength, "reported error message, characters"),
        ("reason_length", \.reasonLength, "cancel reason, characters"),
        ("name_length", \.nameLength, "cluster name, characters"),
        ("page_bytes", \.pageBytes, "payloads and results in one page of a task list, bytes"),
    ]

    /// Sets one limit from `NAME=VALUE`.
    public mutating func set(_ assignment: String) throws(TaskyardError) {
        let parts = assignment.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let setting = Self.settings.first(where: { $0.name == parts[0] }) else {
            throw .invalid("limit", "expected NAME=VALUE with NAME one of \(Self.settings.map(\.name).joined(separator: ", "))")
        }
        guard let value = Int(parts[1]), value >= 1 else {
            throw .invalid("limit", "\(parts[0]) must be a positive integer")
        }
        self[keyPath: setting.keyPath] = value
    }

    // MARK: - Checks

    /// A JSON value stored with a task or node: at most `bytes` as compact JSON, at most `jsonDepth` deep.
    public func check(_ value: JSONValue, field: String, bytes: Int) throws(TaskyardError) {
        try check(value.shape(maximumDepth: jsonDepth), field: field, bytes: bytes)
    }

    /// The same for a payload or result kept as its bytes: measured by the walk that accepted them.
    public func check(_ value: RawJSON, field: String, bytes: Int) throws(TaskyardError) {
        try check(value.shape(maximumDepth: jsonDepth), field: field, bytes: bytes)
    }

    private func check(_ shape: JSONValue.Shape, field: String, bytes: Int) throws(TaskyardError) {
        guard !shape.containsNUL else {
            throw .invalid(field, "must not contain a NUL character (\\u0000) in any string or key")
        }
        guard shape.depth <= jsonDepth else {
            throw .invalid(field, "nests deeper than \(jsonDepth) levels", code: .tooDeep)
        }
        guard shape.bytes <= bytes else {
            throw .invalid(field, "is larger than \(bytes) bytes as JSON", code: .tooLarge)
        }
    }

    /// A string stored as text: at most `length` characters (code points), and no NUL (PostgreSQL text
    /// cannot hold one).
    public func check(_ text: String, field: String, length: Int) throws(TaskyardError) {
        guard text.unicodeScalars.count <= length else {
            throw .invalid(field, "is longer than \(length) characters", code: .tooLarge)
        }
        try Self.checkNoNUL(text, field: field)
    }

    public static func checkNoNUL(_ text: String, field: String) throws(TaskyardError) {
        guard !text.utf8.contains(0) else {
            throw .invalid(field, "must not contain a NUL character (\\u0000)")
        }
    }
}

extension JSONValue {
    public struct Shape: Sendable, Hashable {
        /// An object or array is one level; a scalar is 0.
        public var depth = 0
        /// An upper bound of the compact JSON size.
        public var bytes = 0
        /// A NUL in any string or key: PostgreSQL's jsonb cannot hold one.
        public var containsNUL = false
    }

    /// Depth, size and NULs in one walk. Stops descending past `maximumDepth`, so a hostile value costs no
    /// more than a valid one (and reports a depth past the maximum).
    public func shape(maximumDepth: Int = 512) -> Shape {
        var shape = Shape()
        func walk(_ value: JSONValue, _ level: Int) -> Int {
            switch value {
            case .null: shape.bytes += 4
            case .bool: shape.bytes += 5
            case .integer: shape.bytes += 20
            case .double: shape.bytes += 24
            case .string(let text): add(text)
            case .array(let items):
                guard level < maximumDepth else { return maximumDepth + 1 }
                shape.bytes += 2 + max(0, items.count - 1)
                var depth = 1
                for item in items { depth = max(depth, walk(item, level + 1) + 1) }
                return depth
            case .object(let members):
                guard level < maximumDepth else { return maximumDepth + 1 }
                shape.bytes += 2 + max(0, members.count - 1)
                var depth = 1
                for (key, item) in members {
                    add(key)
                    shape.bytes += 1
                    depth = max(depth, walk(item, level + 1) + 1)
                }
                return depth
            }
            return 0
        }
        func add(_ text: String) {
            shape.bytes += 2
            for byte in text.utf8 {
                shape.bytes += byte < 0x20 ? 6 : (byte == 0x22 || byte == 0x5C ? 2 : 1)
                if byte == 0 { shape.containsNUL = true }
            }
        }
        shape.depth = walk(self, 0)
        return shape
    }

}

/// Times the API reads and writes: years 1 to 9999, what RFC 3339 can write and PostgreSQL can store.
public enum DateRange {
    /// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z, in seconds since 1970.
    public static let seconds: ClosedRange<Double> = -62_135_596_800 ... 253_402_300_799.999

    public static func contains(_ date: Date) -> Bool { seconds.contains(date.timeIntervalSince1970) }

    public static func check(_ date: Date, field: String) throws(TaskyardError) {
        guard contains(date) else { throw .invalid(field, "must be a time in the years 1 to 9999") }
    }
}
