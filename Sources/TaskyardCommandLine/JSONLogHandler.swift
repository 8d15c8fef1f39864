import Foundation
import Logging
import Synchronization
import TaskyardDomain

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
        var merged = metadata.merging(event.metadata ?? [:]) { $1 }
        if let error = event.error, merged["error"] == nil { merged["error"] = "\(error)" }
        // The writer the API's bodies use: its escaping and its timestamps (UTC, milliseconds).
        var writer = JSONWriter(capacity: 256)
        writer.object { object in
            object.key("time")
            object.date(Date())
            object.field("level", event.level.rawValue)
            object.field("logger", label)
            object.field("message", event.message.description)
            for key in merged.keys.sorted() where !Self.reserved.contains(key) {
                object.key(escaping: key)
                object.string(merged[key]!.description)
            }
        }
        Self.output.withLock { _ in FileHandle.standardError.write(Data(writer.bytes + [UInt8(ascii: "\n")])) }
    }

    private static let reserved: Set<String> = ["time", "level", "logger", "message"]

    /// Lines from several threads never interleave.
    private static let output = Mutex(())
}
