import Foundation

/// Writes JSON straight into bytes, for the messages on the hot path (task objects, claims): the same
/// bytes `APIJSON.encoder()` writes (keys sorted, `/` unescaped, times as RFC 3339 UTC with milliseconds),
/// at a fraction of the cost — no `Encoder` containers, no boxing, no date formatter. A test holds the two
/// to the same output.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    /// No comma before the next field or element: the object or array was just opened.
    private var atStart = true

    public init(capacity: Int = 1024) { bytes.reserveCapacity(capacity) }

    // MARK: Objects and arrays

    public mutating func object(_ fields: (inout JSONWriter) -> Void) {
        bytes.append(UInt8(ascii: "{"))
        let outer = atStart
        atStart = true
        fields(&self)
        atStart = outer
        bytes.append(UInt8(ascii: "}"))
    }

    public mutating func array<S: Sequence>(_ elements: S, _ element: (inout JSONWriter, S.Element) -> Void) {
        bytes.append(UInt8(ascii: "["))
        let outer = atStart
        atStart = true
        for value in elements {
            separate()
            element(&self, value)
        }
        atStart = outer
        bytes.append(UInt8(ascii: "]"))
    }

    /// Starts a field; its value is written next. `key` must need no escaping (the contract's keys do not).
    public mutating func key(_ key: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    /// Starts a field whose name is data (a node's id): escaped as any string is.
    public mutating func key(escaping name: String) {
        separate()
        string(name)
        bytes.append(UInt8(ascii: ":"))
    }

    private mutating func separate() {
        if atStart { atStart = false } else { bytes.append(UInt8(ascii: ",")) }
    }

    // MARK: Fields of the common kinds, null when absent

    public mutating func field(_ name: StaticString, _ value: String?) {
        key(name)
        if let value { string(value) } else { null() }
    }

    public mutating func field(_ name: StaticString, _ value: Int64?) {
        key(name)
        if let value { integer(value) } else { null() }
    }

    public mutating func field(_ name: StaticString, _ value: Int?) {
        key(name)
        if let value { integer(Int64(value)) } else { null() }
    }

    public mutating func field(_ name: StaticString, _ value: Bool) {
        key(name)
        bool(value)
    }

    public mutating func field(_ name: StaticString, _ value: Date?) {
        key(name)
        if let value { date(value) } else { null() }
    }

    public mutating func field(_ name: StaticString, _ value: JSONValue?) {
        key(name)
        if let value { self.value(value) } else { null() }
    }

    public mutating func field(_ name: StaticString, _ value: RawJSON?) {
        key(name)
        if let value { raw(value) } else { null() }
    }

    public mutating func field(_ name: StaticString, _ value: [String]?) {
        key(name)
        if let value { array(value) { $0.string($1) } } else { null() }
    }

    /// A field only where there is a value, as a synthesized `Encodable` leaves out a nil optional.
    public mutating func fieldIfPresent<T>(_ name: StaticString, _ value: T?, _ write: (inout JSONWriter, T) -> Void) {
        guard let value else { return }
        key(name)
        write(&self, value)
    }

    // MARK: Values

    public mutating func null() { bytes.append(contentsOf: [110, 117, 108, 108]) }

    public mutating func bool(_ value: Bool) {
        if value { bytes.append(contentsOf: [116, 114, 117, 101]) } else { bytes.append(contentsOf: [102, 97, 108, 115, 101]) }
    }

    public mutating func integer(_ value: Int64) {
        if value >= 0 && value < 10 {
            bytes.append(UInt8(ascii: "0") + UInt8(value))
        } else {
            bytes.append(contentsOf: String(value).utf8)
        }
    }

    /// As Foundation writes a Double: its shortest description, without a trailing `.0`. JSON has no
    /// infinity or NaN (nothing read from JSON holds one): null.
    public mutating func double(_ value: Double) {
        guard value.isFinite else { return null() }
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        bytes.append(contentsOf: text.utf8)
    }

    public mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            var clean = utf8.startIndex
            for index in utf8.indices {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[clean..<index]))
                clean = index + 1
                bytes.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
                case 0x08: bytes.append(UInt8(ascii: "b"))
                case 0x0C: bytes.append(UInt8(ascii: "f"))
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[clean...]))
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Objects with their keys in order of Unicode scalars, as `.sortedKeys` writes them.
    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): bool(flag)
        case .integer(let number): integer(number)
        case .double(let number): double(number)
        case .string(let text): string(text)
        case .array(let elements): array(elements) { $0.value($1) }
        case .object(let members):
            bytes.append(UInt8(ascii: "{"))
            let outer = atStart
            atStart = true
            for name in members.keys.sorted(by: { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }) {
                separate()
                string(name)
                bytes.append(UInt8(ascii: ":"))
                self.value(members[name]!)
            }
            atStart = outer
            bytes.append(UInt8(ascii: "}"))
        }
    }

    /// The bytes as they came: a payload or result is never read and written again.
    public mutating func raw(_ value: RawJSON) { bytes.append(contentsOf: value.bytes) }

    /// `2026-11-23T10:15:30.123Z`: UTC, milliseconds cut (not rounded), as `RFC3339.format` writes.
    public mutating func date(_ value: Date) {
        bytes.append(UInt8(ascii: "\""))
        RFC3339.write(value, into: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }
}
