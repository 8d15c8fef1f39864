import Foundation
import Testing

/// Every module a target imports is declared in Package.swift: a module reached only through another target's
/// dependencies builds today and breaks the day that target drops it.
@Suite("Package.swift")
struct PackageImportsTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// The toolchain's own modules, declared nowhere.
    static let system: Set<String> = ["Foundation", "Dispatch", "Glibc", "Synchronization", "Testing", "XCTest"]

    @Test("declares every module each target imports")
    func everyImportDeclared() throws {
        let manifest = try String(contentsOf: Self.repository.appending(path: "Package.swift"), encoding: .utf8)
        let targets = Self.declaredDependencies(in: manifest)
        #expect(targets.count >= 15, "read \(targets.count) targets from Package.swift")
        for (target, declared) in targets {
            let folder = Self.repository.appending(path: target.isTest ? "Tests" : "Sources").appending(path: target.name)
            let imported = try Self.imports(under: folder)
            let missing = imported.subtracting(declared).subtracting(Self.system).subtracting([target.name])
            #expect(missing.isEmpty, "\(target.name) imports \(missing.sorted()) without declaring them")
        }
    }

    struct Target: Hashable {
        var name: String
        var isTest: Bool
    }

    /// Each target's name and the names it depends on: target names as strings, products by their `name:`.
    static func declaredDependencies(in manifest: String) -> [Target: Set<String>] {
        var targets: [Target: Set<String>] = [:]
        let start = try! Regex(#"\.(target|testTarget|executableTarget)\(\s*name:\s*"([A-Za-z0-9_]+)""#)
        let matches = manifest.matches(of: start)
        for (index, match) in matches.enumerated() {
            let kind = String(match.output[1].substring ?? "")
            let name = String(match.output[2].substring ?? "")
            let end = index + 1 < matches.count ? matches[index + 1].range.lowerBound : manifest.endIndex
            let body = manifest[match.range.upperBound..<end]
            var names: Set<String> = []
            if let dependencies = body.range(of: "dependencies:") {
                let list = body[dependencies.upperBound...]
                // The list ends at its closing bracket; products inside it use parentheses, not brackets.
                var depth = 0
                var text = ""
                for character in list {
                    if character == "[" { depth += 1 } else if character == "]" { depth -= 1; if depth == 0 { break } }
                    text.append(character)
                }
                for quoted in text.matches(of: try! Regex(#""([A-Za-z0-9_]+)""#)) {
                    names.insert(String(quoted.output[1].substring ?? ""))
                }
            }
            targets[Target(name: name, isTest: kind == "testTarget")] = names
        }
        return targets
    }

    static func imports(under folder: URL) throws -> Set<String> {
        var modules: Set<String> = []
        let files = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil)
        let line = try Regex(#"^(?:@testable |@preconcurrency )?import (?:struct |enum |class |func )?([A-Za-z0-9_]+)"#).anchorsMatchLineEndings()
        while let file = files?.nextObject() as? URL {
            guard file.pathExtension == "swift" else { continue }
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in text.matches(of: line) { modules.insert(String(match.output[1].substring ?? "")) }
        }
        return modules
    }
}
