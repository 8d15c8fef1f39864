import Foundation
import Logging
import Synchronization

/// One JSON object a line on standard error (`--log-format json`), for a log pipeline to read without
/// guessing: `time` (UTC, milliseconds), `level`, `logger` (the label), `message`, then the entry's metadata
/// (task, cluster and node ids, trace ids, errors — whatever the code attached) each as a field of its own.
/// Nothing else goes in: the code never puts a secret or a payload in a log entry, in either format.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [(String, String)] = [("time", Self.timestamp(Date())), ("level", event.level.rawValue), ("logger", label),
                                          ("message", event.message.description)]
        let reserved: Set<String> = ["time", "level", "logger", "message"]
        var merged = metadata.merging(event.metadata ?? [:]) { $1 }
        if let error = event.error, merged["error"] == nil { merged["error"] = "\(error)" }
        for key in merged.keys.sorted() where !reserved.contains(key) { fields.append((key, merged[key]!.description)) }
        var line = "{"
        for (index, (key, value)) in fields.enumerated() {
            if index > 0 { line += "," }
            line += Self.quoted(key) + ":" + Self.quoted(value)
        }
        line += "}\n"
        Self.output.withLock { _ in FileHandle.standardError.write(Data(line.utf8)) }
    }

    /// Lines from several threads never interleave.
    private static let output = Mutex(())

    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: TimeZone(identifier: "UTC")!))
    }

    /// A JSON string: quotes, backslashes and control characters escaped.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
