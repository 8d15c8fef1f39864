import Foundation

/// Writes a Swift file holding each migration file's name and text.
/// Usage: EmbedMigrationsTool OUTPUT.swift FILE.sql...
@main
struct EmbedMigrationsTool {
    static func main() throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard let output = arguments.first else {
            FileHandle.standardError.write(Data("usage: EmbedMigrationsTool OUTPUT.swift FILE.sql...\n".utf8))
            exit(2)
        }
        var source = "// Generated from migrations/*.sql by the EmbedMigrations plugin. Do not edit.\n"
        source += "let embeddedMigrationFiles: [(name: String, sql: String)] = [\n"
        for path in arguments.dropFirst() {
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
