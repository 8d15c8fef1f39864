import Foundation
import Postgres
import Testing
import TaskyardDomain
import TaskyardAPI
import TaskyardTestSupport

/// The README is the first thing a new user runs: its SQL must run as written.
@Suite("Documentation")
struct DocumentationTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func sqlBlocks(in markdown: String) -> [String] {
        markdown.components(separatedBy: "```sql\n").dropFirst().compactMap { $0.components(separatedBy: "```").first }
    }

    @Test("every SQL recipe in the README runs as taskyard_reader against a database with history, and finds it")
    func readmeRecipes() async throws {
        let readme = try String(contentsOf: Self.repository.appending(path: "README.md"), encoding: .utf8)
        let recipes = Self.sqlBlocks(in: readme)
        #expect(recipes.count >= 5)
        try await Deployment.run(cluster: "dev") { deployment in
            // The history of the README's example: a task that completes, then task 2, which fails.
            let ok = try await deployment.client.submit(cluster: "dev",
                SubmitTaskRequest(type: "echo", participatingNodes: ["n1", "n2", "n3"], payload: ["name": "vol1"]))
            _ = try await deployment.finished(ok.id, cluster: "dev")
            let bad = try await deployment.client.submit(cluster: "dev",
                SubmitTaskRequest(type: "fail", participatingNodes: ["n1", "n2", "n3"], maxAttempts: 1))
            #expect(bad.id == 2, "the README's story uses task 2")
            _ = try await deployment.finished(bad.id, cluster: "dev")
            // As the README says to run them: as a member of taskyard_reader.
            let rowCounts: [Int] = try await deployment.store.pool.withConnection { connection in
                try connection.execute("SET ROLE taskyard_reader")
                defer { try? connection.execute("RESET ROLE") }
                return try recipes.map { sql in try connection.query(sql).count }
            }
            #expect(rowCounts[0] == 2, "tasks per state: completed and failed")
            #expect(rowCounts[1] == 3, "failures per type and node: fail on n1, n2, n3")
            #expect(rowCounts[2] == 2, "durations: echo and fail")
            #expect(rowCounts[3] == 0, "nothing stuck")
            #expect(rowCounts[4] == 6, "task 2's story: 3 events of its own, one outcome per participant")
        }
    }

    @Test("docs/API.md's table of error codes is ErrorCode's, one row each, and every code the sources name is in it")
    func errorCodes() throws {
        let api = try String(contentsOf: Self.repository.appending(path: "docs/API.md"), encoding: .utf8)
        let table = try #require(api.range(of: "## Error codes")).upperBound
        let rows = api[table...].split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("| `"), let end = line.dropFirst(3).firstIndex(of: "`") else { return nil }
            return String(line[line.index(line.startIndex, offsetBy: 3)..<end])
        }
        #expect(rows == ErrorCode.all.map(\.rawValue), "the table's rows, in ErrorCode.all's order")
        #expect(Set(rows).count == rows.count)
        // No code is written as a string in the sources: each is an ErrorCode constant.
        let sources = Self.repository.appending(path: "Sources")
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)
        let literal = try Regex(#"code: "[a-z_]+""#)
        while let file = files?.nextObject() as? URL {
            guard file.pathExtension == "swift" else { continue }
            let text = try String(contentsOf: file, encoding: .utf8)
            #expect(text.firstMatch(of: literal) == nil, "\(file.lastPathComponent) writes an error code as a string")
        }
    }

    @Test("docs/API.md is the shared contract, with additions only")
    func contractCopy() throws {
        let shared = Self.repository.deletingLastPathComponent().appending(path: "shared/API.md")
        guard FileManager.default.fileExists(atPath: shared.path) else { return }
        let contract = try String(contentsOf: shared, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        let ours = try String(contentsOf: Self.repository.appending(path: "docs/API.md"), encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false)
        // Every line of the contract, in its order: routes may be added, none changed or removed.
        var remaining = ours[...]
        for line in contract {
            guard let found = remaining.firstIndex(of: line) else {
                Issue.record("docs/API.md lacks or changed the contract's line: \(line)")
                return
            }
            remaining = remaining[(found + 1)...]
        }
    }
}
