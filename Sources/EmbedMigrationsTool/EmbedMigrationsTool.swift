import Foundation

/// Writes a Swift file holding the name and text of each `*.sql` file of a folder, in name order.
/// Usage: EmbedMigrationsTool OUTPUT.swift MIGRATIONS_FOLDER
@main
struct EmbedMigrationsTool {
    static func main() throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard arguments.count == 2, let output = arguments.first, let folder = arguments.last else {
            FileHandle.standardError.write(Data("usage: EmbedMigrationsTool OUTPUT.swift MIGRATIONS_FOLDER\n".utf8))
            exit(2)
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: folder)
            .filter { $0.hasSuffix(".sql") }.sorted()
            .map { URL(fileURLWithPath: folder).appending(path: $0).path }
        var source = "// Generated from migrations/*.sql by the EmbedMigrations plugin. Do not edit.\n"
        source += "let embeddedMigrationFiles: [(name: String, sql: String)] = [\n"
        for path in files {
            let url = URL(fileURLWithPath: path)
            let text = try String(contentsOf: url, encoding: .utf8)
            // A raw string whose delimiter cannot occur in the file.
            var hashes = "#"
            while text.contains("\"" + hashes) { hashes += "#" }
            source += "    (name: \(String(reflecting: url.lastPathComponent)), sql: \(hashes)\"\"\"\n"
            source += text.hasSuffix("\n") ? text : text + "\n"
            source += "\"\"\"\(hashes)),\n"
        }
        source += "]\n"
        try Data(source.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
    }
}
