import Foundation

/// How deep a JSON text nests, read from its bytes before any decoder sees it: a decoder recurses once per
/// level, and a body that nests hundreds of levels must be refused before it costs stack or time.
public enum JSONNesting {
    /// The JSON path (`tasks[2].payload.a`) of the first container nested deeper than `maximumDepth`, or nil
    /// when none is. Only the structure is read (strings are skipped, escapes included); malformed text is
    /// left for the decoder to refuse.
    public static func firstTooDeep(in bytes: UnsafeRawBufferPointer, maximumDepth: Int) -> String? {
        // Nearly every body is within the limit: a walk that only counts comes first, and the walk that
        // names the place (a String per key) runs only for the body that is refused.
        guard nestsDeeper(bytes, than: maximumDepth) else { return nil }
        return pathOfFirstTooDeep(in: bytes, maximumDepth: maximumDepth)
    }

    /// Whether any container of the text nests deeper than `maximumDepth`; strings are skipped.
    static func nestsDeeper(_ bytes: UnsafeRawBufferPointer, than maximumDepth: Int) -> Bool {
        var depth = 0
        var index = 0
        let count = bytes.count
        while index < count {
            switch bytes[index] {
            case UInt8(ascii: "\""):
                index += 1
                while index < count, bytes[index] != UInt8(ascii: "\"") {
                    index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
                }
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                if depth > maximumDepth { return true }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            default:
                break
            }
            index += 1
        }
        return false
    }

    private static func pathOfFirstTooDeep(in bytes: UnsafeRawBufferPointer, maximumDepth: Int) -> String? {
        // Per open container: its path so far and whether it is an object, and for arrays the index.
        var path: [String] = []
        var isObject: [Bool] = []
        var index: [Int] = []
        var inString = false
        var escaped = false
        var stringStart = bytes.startIndex
        var lastKey = ""
        var position = bytes.startIndex
        while position != bytes.endIndex {
            let byte = bytes[position]
            defer { position = bytes.index(after: position) }
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                    if isObject.last == true {
                        // Only the most recent string of an object matters as a key; a value string is
                        // replaced by the next key before it is ever used.
                        lastKey = String(decoding: bytes[bytes.index(after: stringStart)..<position].prefix(64), as: UTF8.self)
                    }
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
                stringStart = position
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let component: String
                if let parentIsObject = isObject.last {
                    component = parentIsObject ? (path.last.map { $0.isEmpty ? lastKey : "\($0).\(lastKey)" } ?? lastKey)
                        : "\(path.last ?? "")[\(index[index.count - 1])]"
                } else {
                    component = ""
                }
                if isObject.count >= maximumDepth { return component.isEmpty ? nil : component }
                path.append(component)
                isObject.append(byte == UInt8(ascii: "{"))
                index.append(0)
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard !isObject.isEmpty else { return nil }
                path.removeLast()
                isObject.removeLast()
                index.removeLast()
            case UInt8(ascii: ","):
                if !index.isEmpty { index[index.count - 1] += 1 }
            default:
                break
            }
        }
        return nil
    }
}

extension JSONNesting {
    /// Foundation's decoder reports a number that does not fit an integer field (1.5, 2^64) as invalid JSON
    /// without a path. This finds the path of the first number outside free-form values (payload, result,
    /// labels, progress) that is not a whole number in Int64's range, to name the field a 422 is about.
    public static func firstNonIntegerNumber(in data: Data) -> String? {
        guard let root = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else { return nil }
        let freeForm: Set<String> = ["payload", "result", "labels", "progress"]
        func walk(_ value: Any, _ path: String) -> String? {
            switch value {
            case let object as [String: Any]:
                for key in object.keys.sorted() where !freeForm.contains(key) {
                    if let found = walk(object[key]!, path.isEmpty ? key : "\(path).\(key)") { return found }
                }
            case let array as [Any]:
                for (index, item) in array.enumerated() {
                    if let found = walk(item, "\(path)[\(index)]") { return found }
                }
            case let number as NSNumber:
                // true and false read as 1 and 0 here: whole numbers, never reported.
                let double = number.doubleValue
                if double.rounded() != double || double >= 9.2e18 || double <= -9.2e18 { return path }
            default:
                break
            }
            return nil
        }
        return walk(root, "")
    }
}

extension JSONNesting {
    /// `data` with every number written with a zero fraction (`22.0`, `-3.000`) written without it, or nil
    /// when there is none. Strings are left as they are.
    public static func integralNumbersWithoutFraction(_ data: Data) -> Data? {
        let bytes = [UInt8](data)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var changed = false
        var inString = false
        var escaped = false
        var index = 0
        func isDigit(_ byte: UInt8) -> Bool { byte >= 48 && byte <= 57 }
        while index < bytes.count {
            let byte = bytes[index]
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                output.append(byte)
                index += 1
                continue
            }
            if byte == UInt8(ascii: "\"") {
                inString = true
            } else if byte == UInt8(ascii: "."), index > 0, isDigit(bytes[index - 1]) {
                // A fraction of zeros only, not followed by an exponent: drop it.
                var end = index + 1
                while end < bytes.count, bytes[end] == UInt8(ascii: "0") { end += 1 }
                let next = end < bytes.count ? bytes[end] : UInt8(ascii: " ")
                if end > index + 1, !isDigit(next), next != UInt8(ascii: "e"), next != UInt8(ascii: "E") {
                    changed = true
                    index = end
                    continue
                }
            }
            output.append(byte)
            index += 1
        }
        return changed ? Data(output) : nil
    }
}
