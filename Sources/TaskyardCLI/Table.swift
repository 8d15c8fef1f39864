import TaskyardCommandLine
import Foundation
import TaskyardAPI
import TaskyardDomain

/// Plain-text tables, columns padded to their widest cell.
struct Table {
    let headers: [String]
    var rows: [[String]] = []

    init(_ headers: String...) { self.headers = headers }

    mutating func add(_ cells: String...) { rows.append(cells) }

    var rendered: String {
        let widths = headers.indices.map { column in
            ([headers[column]] + rows.map { column < $0.count ? $0[column] : "" }).map(\.count).max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(headers)] + rows.map(line)).joined(separator: "\n")
    }
}

/// Times as a person reads them: UTC, seconds precision.
func shortTime(_ date: Date?) -> String {
    guard let date else { return "-" }
    let text = RFC3339.format(date)
    return String(text.prefix(19)).replacingOccurrences(of: "T", with: " ")
}

/// Any Encodable as the API's JSON, for --json output.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = APIJSON.encoder()
    encoder.outputFormatting.insert(.prettyPrinted)
    say(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// A JSON value on one line, for table cells and detail views.
func compact(_ value: JSONValue?) -> String {
    guard let value else { return "-" }
    return (try? String(decoding: APIJSON.encode(value), as: UTF8.self)) ?? "?"
}

/// A payload or result on one line, keys sorted: the same text whichever server replica wrote it.
func compact(_ value: RawJSON) -> String { compact(value.value) }
