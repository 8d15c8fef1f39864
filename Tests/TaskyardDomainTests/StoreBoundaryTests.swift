import Foundation
import Testing

/// The product reaches the database only through the stores: the pool is `package`, so this package's
/// test support and bench may read tables directly, and this test keeps every other part of the product
/// from doing so (the servers, agents and commands a user runs).
@Suite("Store boundary")
struct StoreBoundaryTests {
    /// Where the pool may be named: the stores themselves, the client library it belongs to, and the tools
    /// that measure or test the product.
    static let allowed: Set<String> = ["TaskyardStore", "Postgres", "EmbeddedPostgres", "TaskyardTestSupport", "TaskyardBenchCLI"]

    @Test("no part of the product but the stores uses the connection pool")
    func onlyStoresUseThePool() throws {
        let sources = PackageImportsTests.repository.appending(path: "Sources")
        let modules = try FileManager.default.contentsOfDirectory(atPath: sources.path).filter { !Self.allowed.contains($0) }
        #expect(modules.count >= 8, "looked in \(modules)")
        let pattern = try Regex(#"\.pool\b|PostgresPool\(|CredentialStore\(pool"#)
        var offenders: [String] = []
        for module in modules {
            let folder = sources.appending(path: module)
            guard let files = FileManager.default.enumerator(atPath: folder.path) else { continue }
            for case let file as String in files where file.hasSuffix(".swift") {
                let text = try String(contentsOf: folder.appending(path: file), encoding: .utf8)
                for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
                where line.contains(pattern) {
                    offenders.append("\(module)/\(file):\(number + 1): \(line.trimmingCharacters(in: .whitespaces))")
                }
            }
        }
        #expect(offenders.isEmpty, "goes around the stores:\n\(offenders.joined(separator: "\n"))")
    }
}
