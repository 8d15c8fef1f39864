import EmbeddedPostgres
import Foundation
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardSecurity
import TaskyardServer
import TaskyardTestSupport

/// A throw-away certificate authority and one certificate it signed for 127.0.0.1 and localhost, made
/// with the openssl command line.
struct TestCertificates {
    let folder: URL
    var caFile: String { folder.appending(path: "ca.pem").path }
    var certificateFile: String { folder.appending(path: "node.pem").path }
    var keyFile: String { folder.appending(path: "node-key.pem").path }
    var files: TLSFiles { TLSFiles(certificateFile: certificateFile, keyFile: keyFile) }

    static func make() throws -> TestCertificates {
        let folder = FileManager.default.temporaryDirectory.appending(path: "taskyard-tls-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data("subjectAltName=IP:127.0.0.1,DNS:localhost\n".utf8).write(to: folder.appending(path: "san.ext"))
        let steps: [[String]] = [
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca-key.pem",
             "-out", "ca.pem", "-days", "1", "-subj", "/CN=taskyard test CA"],
            ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "node-key.pem",
             "-out", "node.csr", "-subj", "/CN=localhost"],
            ["x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-out", "node.pem",
             "-days", "1", "-extfile", "san.ext"],
        ]
        // posix_spawn with absolute paths, not Foundation's Process: nothing of this process's file
        // descriptors is touched (other tests' servers listen on some of them).
        for arguments in steps {
            let absolute = arguments.map { word in
                word.hasSuffix(".pem") || word.hasSuffix(".csr") || word.hasSuffix(".ext") ? folder.appending(path: word).path : word
            }
            let status = try Subprocess.run("/usr/bin/openssl", absolute, outputPath: folder.appending(path: "openssl.log").path)
            guard status == 0 else { throw DeploymentError("openssl \(arguments.joined(separator: " ")) failed") }
        }
        return TestCertificates(folder: folder)
    }
}

@Suite("TLS")
struct TLSTests {
    @Test("the Kadalu flow over TLS: clients, agents and participants all on https, trusting only the test CA",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")))
    func kadaluFlowOverTLS() async throws {
        let certificates = try TestCertificates.make()
        defer { try? FileManager.default.removeItem(at: certificates.folder) }
        try await Deployment.run(agentSettings: { $0.tls = certificates.files },
                                 serverSettings: { $0.tls = certificates.files },
                                 caFile: certificates.caFile) { deployment in
            #expect(deployment.serverURL.hasPrefix("https://"))
            let nodes = try await deployment.client.nodes(cluster: "c1")
            #expect(nodes.count == 3 && nodes.allSatisfy { $0.endpoint.hasPrefix("https://127.0.0.1:") }, "\(nodes.map(\.endpoint))")
            let task = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "echo", participatingNodes: ["n1", "n2", "n3"], payload: ["name": "vol1"]))
            let detail = try await deployment.finished(task.id)
            #expect(detail.task.state == .completed, "\(detail.task.error ?? "")")
            #expect(detail.task.participants.map(\.state) == [.completed, .completed, .completed])
            #expect(detail.task.result?["n2"] == ["name": "vol1"], "n2 ran over https")

            // A client that does not trust the CA cannot talk to the server, nor can plain HTTP.
            let untrusting = TaskyardClient(baseURL: deployment.serverURL, token: deployment.adminToken)
            await #expect(throws: (any Error).self) { _ = try await untrusting.clusters() }
            let plain = TaskyardClient(baseURL: deployment.serverURL.replacingOccurrences(of: "https://", with: "http://"),
                                       token: deployment.adminToken)
            await #expect(throws: (any Error).self) { _ = try await plain.clusters() }
        }
    }
}
