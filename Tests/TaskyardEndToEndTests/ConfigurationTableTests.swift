import Foundation
import Testing
import TaskyardTestSupport

/// The README's Configuration table is held to what the commands declare: each flag it lists exists on the
/// commands it names, each flag of `serve`, `agent`, `dev` and `migrate` is in it, the environment variable of
/// each row is the one the flag's help names ("Default: $VARIABLE"), and the variables the commands read
/// (`setting`, `number`) are exactly those of the table.
@Suite("Configuration table")
struct ConfigurationTableTests {
    struct Row {
        var commands: [String]
        var flags: [String]
        var variables: [String]
        var line: String
    }

    /// The table's rows: commands, flags (their first word) and variables, as written in backticks.
    static func rows(of readme: String) throws -> [Row] {
        let section = try #require(readme.components(separatedBy: "\n## Configuration\n").dropFirst().first)
            .components(separatedBy: "\n## ").first ?? ""
        let ticked = try Regex(#"`([^`]+)`"#)
        func ticks(_ cell: Substring) -> [String] { cell.matches(of: ticked).map { String($0.output[1].substring!) } }
        return section.split(separator: "\n").filter { $0.hasPrefix("| `") }.map { line in
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            let commands = ticks(Substring(cells[1]))
            let flags = ticks(Substring(cells[2])).map { String($0.split(separator: " ")[0]) }
            return Row(commands: commands, flags: flags, variables: ticks(Substring(cells[3])), line: String(line))
        }
    }

    /// Each command's long options (`serve`, `task submit`, …) with their help text, from the binary itself.
    static func declaredOptions() throws -> [String: [String: String]] {
        let (status, output) = try TestEnvironment.runTaskyard(["--experimental-dump-help"])
        #expect(status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        var options: [String: [String: String]] = [:]
        func walk(_ command: [String: Any], path: [String]) {
            var mine: [String: String] = [:]
            for argument in command["arguments"] as? [[String: Any]] ?? [] {
                for name in argument["names"] as? [[String: Any]] ?? [] where name["kind"] as? String == "long" {
                    let flag = "--" + (name["name"] as? String ?? "")
                    if flag != "--help" { mine[flag] = "\(argument["abstract"] ?? "") \(argument["discussion"] ?? "")" }
                }
            }
            options[path.joined(separator: " ")] = mine
            for sub in command["subcommands"] as? [[String: Any]] ?? [] {
                walk(sub, path: path + [sub["commandName"] as? String ?? ""])
            }
        }
        let root = try #require(json["command"] as? [String: Any])
        for sub in root["subcommands"] as? [[String: Any]] ?? [] { walk(sub, path: [sub["commandName"] as? String ?? ""]) }
        return options
    }

    /// The options of a command and of all its subcommands (`task` stands for `task submit`, `task list`, …),
    /// with the help of each flag as all of them give it.
    static func options(of command: String, in declared: [String: [String: String]]) -> [String: String] {
        var merged: [String: String] = [:]
        for (path, options) in declared where path == command || path.hasPrefix(command + " ") {
            merged.merge(options) { first, next in first == next ? first : first + " " + next }
        }
        return merged
    }

    /// The commands documented flag by flag.
    static let configured = ["serve", "agent", "dev", "migrate"]

    @Test("every flag in the table exists where it says, and every flag of serve, agent, dev and migrate is in it, with its variable")
    func tableMatchesTheCommands() throws {
        let readme = try String(contentsOf: DocumentationTests.repository.appending(path: "README.md"), encoding: .utf8)
        let rows = try Self.rows(of: readme)
        #expect(rows.count >= 30, "read \(rows.count) rows")
        let declared = try Self.declaredOptions()
        #expect(declared["serve"]?["--database-url"] != nil, "read the commands' options")
        for row in rows {
            for command in row.commands {
                let options = Self.options(of: command, in: declared)
                #expect(!options.isEmpty, "no command \(command): \(row.line)")
                for flag in row.flags {
                    #expect(options[flag] != nil, "\(command) has no \(flag): \(row.line)")
                }
                // The row's variable is named by the help of one of its flags; a variable the help names is in the row.
                let helps = row.flags.compactMap { options[$0] }.joined(separator: " ")
                for variable in row.variables {
                    #expect(helps.contains("$" + variable), "\(command) \(row.flags): no help names $\(variable)")
                }
                for flag in row.flags {
                    for named in Self.variables(in: options[flag] ?? "") {
                        #expect(row.variables.contains(named), "\(command) \(flag)'s help names $\(named), the table does not: \(row.line)")
                    }
                }
            }
        }
        for command in Self.configured {
            for flag in Self.options(of: command, in: declared).keys.sorted() {
                let listed = rows.contains { $0.commands.contains(command) && $0.flags.contains(flag) }
                #expect(listed, "\(command) \(flag) is not in the README's Configuration table")
            }
        }
    }

    @Test("the commands read exactly the environment variables the table lists, and read them one way")
    func variablesReadAreTheTable() throws {
        let readme = try String(contentsOf: DocumentationTests.repository.appending(path: "README.md"), encoding: .utf8)
        let documented = Set(try Self.rows(of: readme).flatMap(\.variables))
        var read: Set<String> = []
        var elsewhere: [String] = []
        let call = try Regex(#"(?:setting|number)\([^\n]*?"([A-Z][A-Z_]+)""#)
        for module in ["TaskyardCLI", "TaskyardCommandLine"] {
            let folder = DocumentationTests.repository.appending(path: "Sources").appending(path: module)
            for file in try FileManager.default.contentsOfDirectory(atPath: folder.path) where file.hasSuffix(".swift") {
                let text = try String(contentsOf: folder.appending(path: file), encoding: .utf8)
                read.formUnion(text.matches(of: call).map { String($0.output[1].substring!) })
                if file != "Options.swift", text.contains("processInfo.environment[") { elsewhere.append(file) }
            }
        }
        #expect(read.count >= 10, "found the reads: \(read.sorted())")
        #expect(elsewhere.isEmpty, "read the environment apart from setting(): \(elsewhere)")
        #expect(read == documented, "read but not in the table: \(read.subtracting(documented).sorted()); in the table but never read: \(documented.subtracting(read).sorted())")
    }

    static func variables(in help: String) -> [String] {
        help.matches(of: try! Regex(#"\$([A-Z][A-Z_]+)"#)).map { String($0.output[1].substring!) }
    }
}
