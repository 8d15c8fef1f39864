import Foundation
import Testing
import TaskyardTestSupport
import Yams

@Suite("docker-compose.yml")
struct ComposeFileTests {
    @Test("postgres, a server and three agents, each command with flags the CLI really has")
    func servicesUseRealFlags() throws {
        let repository = DocumentationTests.repository
        let text = try String(contentsOf: repository.appending(path: "docker-compose.yml"), encoding: .utf8)
        let document = try #require(try Yams.load(yaml: text) as? [String: Any])
        let services = try #require(document["services"] as? [String: Any])
        for name in ["postgres", "server", "agent-n1", "agent-n2", "agent-n3"] {
            #expect(services[name] != nil, "service \(name)")
        }
        #expect(FileManager.default.fileExists(atPath: repository.appending(path: "Dockerfile").path))

        var checked = 0
        for (name, value) in services.sorted(by: { $0.key < $1.key }) {
            let service = try #require(value as? [String: Any])
            for dependency in Self.dependencies(of: service) {
                #expect(services[dependency] != nil, "\(name) depends on an unknown service \(dependency)")
            }
            // Built from the Dockerfile and run as taskyard (not a step with an entrypoint of its own).
            guard service["build"] != nil, service["entrypoint"] == nil else { continue }
            let command = try #require(service["command"] as? [String], "\(name) needs a command in list form")
            let words = Array(command.prefix { !$0.hasPrefix("-") })
            let flags = command.filter { $0.hasPrefix("--") }
            let help = try TestEnvironment.runTaskyard(words + ["--help"])
            #expect(help.status == 0, "\(name): taskyard \(words.joined(separator: " ")) --help failed: \(help.output)")
            for flag in flags {
                #expect(help.output.contains(flag + " ") || help.output.contains(flag + "\n"),
                        "\(name) uses \(flag), which `taskyard \(words.joined(separator: " "))` does not have")
            }
            checked += 1
        }
        #expect(checked >= 4)
    }

    @Test("each agent mounts its own node token and nothing else secret: no admin token, no other node's, no key file")
    func eachServiceItsOwnSecret() throws {
        let text = try String(contentsOf: DocumentationTests.repository.appending(path: "docker-compose.yml"), encoding: .utf8)
        let services = try #require((try Yams.load(yaml: text) as? [String: Any])?["services"] as? [String: Any])
        for node in ["n1", "n2", "n3"] {
            let agent = try #require(services["agent-\(node)"] as? [String: Any])
            let volumes = (agent["volumes"] as? [String]) ?? []
            let command = try #require(agent["command"] as? [String])
            #expect(volumes == ["token-\(node):/tokens/\(node):ro", "tls-\(node):/tls/\(node):ro"], "agent-\(node) mounts \(volumes)")
            #expect(command.contains("--tls-cert-file") && command.contains("--ca-file") && !command.contains("--allow-plain-http"),
                    "agent-\(node) speaks HTTPS")
            #expect(command.contains("--handler-user"), "agent-\(node) runs its handlers as a user that cannot read its token")
            let tokenFile = try #require(command.firstIndex(of: "--token-file").map { command[$0 + 1] })
            #expect(tokenFile.hasPrefix("/tokens/\(node)/"), "agent-\(node) reads its token from \(tokenFile)")
        }
        let keyHolders = services.filter { _, value in
            ((value as? [String: Any])?["volumes"] as? [String] ?? []).contains { $0.hasPrefix("server-key:") }
        }.keys.sorted()
        #expect(keyHolders == ["server", "server-key"])
        let caKeyHolders = services.filter { _, value in
            ((value as? [String: Any])?["volumes"] as? [String] ?? []).contains { $0.hasPrefix("tls-ca-key:") }
        }.keys.sorted()
        #expect(caKeyHolders == ["certs"])
    }

    @Test("the example's certificate script makes a CA and, per service, a key and a certificate for its host name that the CA verifies")
    func certificates() throws {
        let root = URL(fileURLWithPath: "/tmp/taskyard-certs-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        for folder in ["ca-key", "server", "n1"] {
            try FileManager.default.createDirectory(at: root.appending(path: folder), withIntermediateDirectories: true)
        }
        let script = DocumentationTests.repository.appending(path: "examples/compose/make-certs.sh").path
        #expect(try Self.run("/bin/sh", [script, root.path, "server", "n1"]).status == 0)
        // Run again, it keeps what is there.
        let first = try String(contentsOf: root.appending(path: "n1/cert.pem"), encoding: .utf8)
        #expect(try Self.run("/bin/sh", [script, root.path, "server", "n1"]).status == 0)
        #expect(try String(contentsOf: root.appending(path: "n1/cert.pem"), encoding: .utf8) == first)
        for (folder, host) in [("server", "server"), ("n1", "agent-n1")] {
            let verified = try Self.run("/usr/bin/openssl", ["verify", "-CAfile", root.appending(path: "\(folder)/ca.pem").path,
                                                              root.appending(path: "\(folder)/cert.pem").path])
            #expect(verified.status == 0, "\(verified.output)")
            let names = try Self.run("/usr/bin/openssl", ["x509", "-in", root.appending(path: "\(folder)/cert.pem").path, "-noout", "-ext", "subjectAltName"])
            #expect(names.output.contains("DNS:\(host)"), "\(names.output)")
            let mode = try FileManager.default.attributesOfItem(atPath: root.appending(path: "\(folder)/key.pem").path)[.posixPermissions] as? NSNumber
            #expect(mode?.intValue == 0o600)
        }
        #expect(!FileManager.default.fileExists(atPath: root.appending(path: "n1/ca-key.pem").path))
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        try TestEnvironment.run(URL(fileURLWithPath: executable), arguments)
    }

    static func dependencies(of service: [String: Any]) -> [String] {
        if let list = service["depends_on"] as? [String] { return list }
        if let map = service["depends_on"] as? [String: Any] { return Array(map.keys) }
        return []
    }
}
