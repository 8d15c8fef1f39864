import AsyncHTTPClient
import Foundation
import Hummingbird
import NIOCore
import Synchronization
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardSecurity
import TaskyardServer
import TaskyardStore
import TaskyardTestSupport
import Testing

/// Webhooks: subscriptions through the API, deliveries signed so that the Standard Webhooks specification's
/// own library verifies them, retried, isolated from one another, never redirected, and made from the
/// committed transitions (a server that dies before sending leaves them to the next one).
@Suite("Webhooks")
struct WebhookTests {
    static let path = "/api/v1/clusters/\(Deployment.cluster)/webhooks"

    /// What a receiver got: one request's headers and body.
    struct Received: Sendable {
        var headers: [String: String]
        var body: Data
    }

    /// Requests by path; `answer` decides each one's status (given the number of requests to that path so far).
    final class Receiver: Sendable {
        let received = Mutex<[String: [Received]]>([:])
        let answer: @Sendable (_ path: String, _ count: Int) async -> Response

        init(answer: @escaping @Sendable (_ path: String, _ count: Int) async -> Response) {
            self.answer = answer
        }

        var router: Router<BasicRequestContext> {
            let router = Router()
            router.post("/hooks/:name") { [self] request, context -> Response in
                let name = context.parameters.get("name") ?? ""
                var headers: [String: String] = [:]
                for field in request.headers { headers[field.name.canonicalName] = field.value }
                let body = Data(try await request.body.collect(upTo: 1 << 20).readableBytesView)
                let count = self.received.withLock { all in
                    all[name, default: []].append(Received(headers: headers, body: body))
                    return all[name]!.count
                }
                return await self.answer(name, count)
            }
            return router
        }

        func requests(_ name: String) -> [Received] { received.withLock { $0[name] ?? [] } }
    }

    static func settings(_ configuration: inout ServerConfiguration) {
        configuration.webhooks.interval = .milliseconds(50)
        configuration.webhooks.backoff.base = .milliseconds(200)
        configuration.webhooks.attemptTimeout = .seconds(2)
    }

    static func object(_ answer: APIContractTests.Answer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: answer.body) as? [String: Any], "\(String(decoding: answer.body, as: UTF8.self))")
    }

    static func subscribe(_ deployment: Deployment, port: Int, name: String, events: [String] = ["task.completed"],
                          types: [String]? = nil) async throws -> (id: Int64, secret: String) {
        let typesField = types.map { #", "types": [\#($0.map { "\"\($0)\"" }.joined(separator: ", "))]"# } ?? ""
        let body = #"{"url": "http://127.0.0.1:\#(port)/hooks/\#(name)", "events": [\#(events.map { "\"\($0)\"" }.joined(separator: ", "))]\#(typesField)}"#
        let answer = try await APIContractTests.send(deployment, "POST", Self.path, body: body)
        #expect(answer.status == 201, "\(String(decoding: answer.body, as: UTF8.self))")
        let object = try Self.object(answer)
        return (try #require((object["id"] as? NSNumber)?.int64Value), try #require(object["secret"] as? String))
    }

    static func deliveries(_ deployment: Deployment, webhook: Int64) async throws -> [[String: Any]] {
        let answer = try await APIContractTests.send(deployment, "GET", "\(Self.path)/\(webhook)/deliveries")
        return try #require(try Self.object(answer)["deliveries"] as? [[String: Any]])
    }

    /// Each message verified by the Standard Webhooks library from PyPI (`standardwebhooks`): nil when it is
    /// not installed (CI installs it; `pip install standardwebhooks` to run this check here).
    static func verifiedByStandardWebhooks(_ messages: [Received], secret: String) throws -> Bool? {
        let script = """
            import json, sys
            try:
                from standardwebhooks.webhooks import Webhook
            except ImportError:
                sys.exit(3)
            secret, messages = json.load(sys.stdin)
            hook = Webhook(secret)
            for message in messages:
                hook.verify(message["body"], message["headers"])
            """
        let input = try JSONSerialization.data(withJSONObject: [secret, messages.map { message in
            ["headers": message.headers, "body": String(decoding: message.body, as: UTF8.self)] as [String: Any]
        }])
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        let stdin = Pipe()
        process.standardInput = stdin
        process.standardError = FileHandle.nullDevice
        try process.run()
        stdin.fileHandleForWriting.write(input)
        try stdin.fileHandleForWriting.close()
        process.waitUntilExit()
        if process.terminationStatus == 3 { return nil }
        return process.terminationStatus == 0
    }

    @Test("signatures match the Standard Webhooks specification's test vector")
    func specificationVector() throws {
        let secret = WebhookSecret(raw: try #require(Data(base64Encoded: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")))
        #expect(secret.text == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        #expect(secret.signature(messageID: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: Data(#"{"test": 2432232314}"#.utf8))
                == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test("made, listed, read and deleted by an admin; the secret shown once; what is no subscription is refused naming the field")
    func lifecycle() async throws {
        try await Deployment.run(nodes: ["n1"]) { deployment in
            let made = try await APIContractTests.send(deployment, "POST", Self.path, body: #"""
                {"url": "https://hooks.example.test:8443/taskyard/in", "events": ["task.completed", "task.failed"], "types": ["noop"]}
                """#)
            #expect(made.status == 201)
            let webhook = try Self.object(made)
            let id = try #require((webhook["id"] as? NSNumber)?.int64Value)
            #expect((webhook["secret"] as? String)?.hasPrefix("whsec_") == true)
            #expect(webhook["url"] as? String == "https://hooks.example.test:8443/taskyard/in")
            #expect(webhook["events"] as? [String] == ["task.completed", "task.failed"] && webhook["types"] as? [String] == ["noop"])

            let listed = try Self.object(try await APIContractTests.send(deployment, "GET", Self.path))["webhooks"] as? [[String: Any]]
            #expect(listed?.count == 1 && listed?.first?["secret"] == nil, "the secret is shown only when made")
            let read = try await APIContractTests.send(deployment, "GET", "\(Self.path)/\(id)")
            let readObject = try Self.object(read)
            #expect(read.status == 200 && readObject["secret"] == nil)
            let emptyLog = try Self.object(try await APIContractTests.send(deployment, "GET", "\(Self.path)/\(id)/deliveries"))
            #expect((emptyLog["deliveries"] as? [Any])?.isEmpty == true && emptyLog["next"] is NSNull)

            // The stored secret is sealed: nothing in the row signs.
            let stored: String = try await deployment.store.pool.withConnection { connection in
                try connection.query("SELECT secret_sealed FROM webhooks WHERE id = $1", [id]).single().decode("secret_sealed")
            }
            let secret = try #require(webhook["secret"] as? String)
            #expect(!stored.contains(String(secret.dropFirst(6).prefix(16))))

            // Admin scope only.
            let operate = try await deployment.store.mintToken(scopes: [.read, .submit, .operate], name: "operator")
            for (method, path) in [("GET", Self.path), ("GET", "\(Self.path)/\(id)"), ("DELETE", "\(Self.path)/\(id)")] {
                let refused = try await APIContractTests.send(deployment, method, path, headers: ["Authorization": "Bearer \(operate)"],
                                                              authorized: false)
                #expect(refused.status == 403, "\(method) \(path)")
            }

            #expect(try await APIContractTests.send(deployment, "DELETE", "\(Self.path)/\(id)").status == 204)
            for path in ["\(Self.path)/\(id)", "\(Self.path)/\(id)/deliveries", "\(Self.path)/nope"] {
                let gone = try await APIContractTests.send(deployment, "GET", path)
                #expect(gone.status == 404 && String(decoding: gone.body, as: UTF8.self).contains("webhook_not_found"), "\(path)")
            }
            let noDelivery = try await APIContractTests.send(deployment, "POST", "\(Self.path)/1/deliveries/1/resend")
            #expect(noDelivery.status == 404)

            for (body, field) in [
                (#"{"url": "ftp://h:1/x", "events": ["task.completed"]}"#, "url"),
                (#"{"url": "http://user@h:1/x", "events": ["task.completed"]}"#, "url"),
                (#"{"url": "http://h:1/x?token=1", "events": ["task.completed"]}"#, "url"),
                (#"{"url": "http://h:1/x#part", "events": ["task.completed"]}"#, "url"),
                (#"{"url": "http://h/x", "events": ["task.completed"]}"#, "url"),
                (#"{"url": "http://h:1/x", "events": []}"#, "events"),
                (#"{"url": "http://h:1/x", "events": ["task.done"]}"#, "events[0]"),
                (#"{"url": "http://h:1/x", "events": ["task.completed"], "types": ["no type!"]}"#, "types[0]"),
                (#"{"events": ["task.completed"]}"#, "url"),
            ] {
                let refused = try await APIContractTests.send(deployment, "POST", Self.path, body: body)
                #expect(refused.status == 422, "\(body)")
                #expect(String(decoding: refused.body, as: UTF8.self).contains("\"field\":\"\(field)\""),
                        "\(field): \(String(decoding: refused.body, as: UTF8.self))")
            }
        }
    }

    @Test("a receiver that fails twice and then answers gets three deliveries of one message, each signed as Standard Webhooks verifies")
    func retriedAndSigned() async throws {
        let receiver = Receiver { _, count in Response(status: count <= 2 ? .serviceUnavailable : .noContent) }
        try await HardeningTests.serving(receiver.router) { port in
            try await Deployment.run(nodes: ["n1"], serverSettings: Self.settings) { deployment in
                let (webhook, secret) = try await Self.subscribe(deployment, port: port, name: "flaky", types: ["noop"])
                let other = try await deployment.client.submit(cluster: Deployment.cluster, SubmitTaskRequest(type: "fail", participatingNodes: ["n1"], maxAttempts: 1))
                let task = try await deployment.client.submit(cluster: Deployment.cluster, SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
                _ = try await deployment.finished(task.id)
                _ = try await deployment.finished(other.id)
                try await eventually("the third attempt is answered") {
                    try await Self.deliveries(deployment, webhook: webhook).first?["status"] as? String == "delivered"
                }
                let log = try await Self.deliveries(deployment, webhook: webhook)
                #expect(log.count == 1, "only the noop task's completion: \(log)")
                let delivery = try #require(log.first)
                #expect(delivery["attempts"] as? Int == 3 && delivery["last_status_code"] as? Int == 204)
                #expect((delivery["task_id"] as? NSNumber)?.int64Value == task.id && delivery["event"] as? String == "task.completed")

                let messages = receiver.requests("flaky")
                #expect(messages.count == 3)
                #expect(Set(messages.map { $0.headers["webhook-id"] ?? "" }).count == 1, "one message id for every attempt")
                #expect(Set(messages.map(\.body)).count == 1, "the same body every attempt")
                let message = try #require(try JSONSerialization.jsonObject(with: messages[0].body) as? [String: Any])
                let data = try #require(message["data"] as? [String: Any])
                #expect(message["type"] as? String == "task.completed")
                #expect((data["task_id"] as? NSNumber)?.int64Value == task.id && data["to"] as? String == "completed")
                #expect((data["task"] as? [String: Any])?["state"] as? String == "completed")

                // Each attempt's signature, checked here with the secret as given …
                let key = WebhookSecret(raw: try #require(Data(base64Encoded: String(secret.dropFirst(6)))))
                for message in messages {
                    let id = try #require(message.headers["webhook-id"]), timestamp = try #require(Int64(message.headers["webhook-timestamp"] ?? ""))
                    #expect(message.headers["webhook-signature"] == key.signature(messageID: id, timestamp: timestamp, body: message.body))
                    #expect(abs(Double(timestamp) - Date().timeIntervalSince1970) < 60)
                }
                // … and by the specification's own library, where it is installed.
                if let verified = try Self.verifiedByStandardWebhooks(messages, secret: secret) {
                    #expect(verified, "standardwebhooks refused a delivery's signature")
                    var forged = messages[0]
                    forged.body = Data(String(decoding: forged.body, as: UTF8.self).replacingOccurrences(of: "completed", with: "cancelled").utf8)
                    #expect(try Self.verifiedByStandardWebhooks([forged], secret: secret) == false, "a changed body must not verify")
                }

                // Sent again on request: a fourth message with the same id.
                let resent = try await APIContractTests.send(deployment, "POST", "\(Self.path)/\(webhook)/deliveries/\(try #require((delivery["id"] as? NSNumber)?.int64Value))/resend")
                #expect(resent.status == 202)
                try await eventually("the resent delivery arrives") { receiver.requests("flaky").count == 4 }
                #expect(receiver.requests("flaky").last?.headers["webhook-id"] == messages[0].headers["webhook-id"])
            }
        }
    }

    @Test("a receiver that hangs holds up no other, and a redirect is not followed")
    func isolatedAndNotRedirected() async throws {
        let trapped = Mutex(0)
        let receiver = Receiver { name, _ in
            switch name {
            case "hang":
                try? await Task.sleep(for: .seconds(60))
                return Response(status: .ok)
            case "redirect":
                var response = Response(status: .temporaryRedirect)
                response.headers[.location] = "/hooks/trap"
                return response
            case "trap":
                trapped.withLock { $0 += 1 }
                return Response(status: .ok)
            default:
                return Response(status: .ok)
            }
        }
        try await HardeningTests.serving(receiver.router) { port in
            // Attempts without an answer fail after 5 s: the prompt receiver has everything long before.
            try await Deployment.run(nodes: ["n1"], serverSettings: { Self.settings(&$0); $0.webhooks.attemptTimeout = .seconds(5) }) { deployment in
                let hang = try await Self.subscribe(deployment, port: port, name: "hang")
                let redirect = try await Self.subscribe(deployment, port: port, name: "redirect")
                let prompt = try await Self.subscribe(deployment, port: port, name: "prompt")
                var ids: [Int64] = []
                for _ in 0..<20 {
                    ids.append(try await deployment.client.submit(cluster: Deployment.cluster, SubmitTaskRequest(type: "noop", participatingNodes: ["n1"])).id)
                }
                for id in ids { _ = try await deployment.finished(id) }
                // Every completion reaches the prompt receiver while the hanging one holds its attempts open.
                try await eventually("the prompt receiver has all 20", within: .seconds(10)) { receiver.requests("prompt").count >= 20 }
                #expect(receiver.requests("hang").count <= 16, "a hanging receiver holds at most its own lane's attempts")
                let promptLog = try await Self.deliveries(deployment, webhook: prompt.id)
                #expect(promptLog.count == 20 && promptLog.allSatisfy { $0["status"] as? String == "delivered" && $0["attempts"] as? Int == 1 })

                try await eventually("the redirect is recorded") {
                    try await Self.deliveries(deployment, webhook: redirect.id).contains { $0["last_status_code"] as? Int == 307 }
                }
                let redirected = try await Self.deliveries(deployment, webhook: redirect.id).first { $0["last_status_code"] as? Int == 307 }
                #expect((redirected?["last_error"] as? String)?.contains("redirect") == true && redirected?["status"] as? String == "pending")
                #expect(trapped.withLock { $0 } == 0, "the redirect's target was never called")

                // The hanging receiver's attempts time out and are tried again, not lost.
                try await eventually("a hanging attempt times out", within: .seconds(20)) {
                    try await Self.deliveries(deployment, webhook: hang.id).contains { ($0["last_error"] as? String)?.contains("no answer") == true }
                }
            }
        }
    }

    @Test("the maintenance leader killed with SIGKILL while an attempt is under way: the next server makes it again, under the same webhook-id")
    func attemptUnderWayWhenLeaderKilled() async throws {
        let receiver = Receiver { _, count in
            if count == 1 { try? await Task.sleep(for: .seconds(60)) }
            return Response(status: .noContent)
        }
        try await HardeningTests.serving(receiver.router) { port in
            try await TestDatabase.withStore { store in
                let database = store.pool.configuration.connectionString
                _ = try await store.clusters.createCluster(id: Deployment.cluster, name: "webhooks")
                _ = try await store.clusters.registerNode(cluster: Deployment.cluster, id: "n1", endpoint: "http://127.0.0.1:9")
                let admin = try await store.mintToken(scopes: [.admin])
                let ports = TestEnvironment.freePorts(2)
                func serve(_ port: Int) throws -> TaskyardProcess {
                    // An attempt counts as lost 3 + 5 s after it was taken.
                    try TaskyardProcess.start(["serve", "--key-file", TestEnvironment.keyFilePath, "--database-url", database,
                                               "--listen", "127.0.0.1:\(port)", "--webhook-timeout", "3", "--log-level", "info"],
                                              name: "webhook-serve-\(port)")
                }
                let first = try serve(ports[0])
                var second: TaskyardProcess?
                do {
                    let client = TaskyardClient(baseURL: "http://127.0.0.1:\(ports[0])", token: admin)
                    try await eventually("the first server leads", within: .seconds(30)) { (try? await client.healthBody())?.maintenanceLeader == true }
                    let webhook = try await client.createWebhook(cluster: Deployment.cluster, WebhookRequest(url: "http://127.0.0.1:\(port)/hooks/slow",
                                                                                                            events: ["task.queued"]))
                    let task = try await client.submit(cluster: Deployment.cluster, SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
                    try await eventually("the first attempt reaches the receiver") { receiver.requests("slow").count == 1 }
                    await first.stop(SIGKILL)
                    second = try serve(ports[1])
                    try await eventually("the next server makes the attempt again", within: .seconds(30)) { receiver.requests("slow").count == 2 }
                    let messages = receiver.requests("slow")
                    #expect(messages[0].headers["webhook-id"] == messages[1].headers["webhook-id"] && messages[0].body == messages[1].body)
                    let body = try JSONSerialization.jsonObject(with: messages[1].body) as? [String: Any]
                    #expect(((body?["data"] as? [String: Any])?["task_id"] as? NSNumber)?.int64Value == task.id)
                    let log = TaskyardClient(baseURL: "http://127.0.0.1:\(ports[1])", token: admin)
                    try await eventually("the delivery is recorded delivered") {
                        try await log.deliveries(cluster: Deployment.cluster, webhook: webhook.id).deliveries.first?.status == .delivered
                    }
                    #expect(try await log.deliveries(cluster: Deployment.cluster, webhook: webhook.id).deliveries.map(\.attempts) == [2])
                    #expect(await second?.stop(SIGTERM) == 0)
                } catch {
                    await first.stop(SIGKILL)
                    await second?.stop(SIGKILL)
                    throw error
                }
            }
        }
    }

    @Test("deliveries are made from committed transitions: a server gone before sending leaves them to the next")
    func deliveredAfterRestart() async throws {
        let receiver = Receiver { _, _ in Response(status: .ok) }
        try await HardeningTests.serving(receiver.router) { port in
            try await TestDatabase.withStore { store in
                let taskID: Int64 = try await Deployment.run(on: store, nodes: ["n1"], serverSettings: { configuration in
                    Self.settings(&configuration)
                    configuration.maintenanceEnabled = false
                }) { deployment in
                    _ = try await Self.subscribe(deployment, port: port, name: "later")
                    let task = try await deployment.client.submit(cluster: Deployment.cluster, SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
                    _ = try await deployment.finished(task.id)
                    return task.id
                }
                #expect(receiver.requests("later").isEmpty, "no server sent it yet")
                try await Deployment.run(on: store, nodes: [], serverSettings: Self.settings) { _ in
                    try await eventually("the next server delivers it") { !receiver.requests("later").isEmpty }
                }
                let delivered = try JSONSerialization.jsonObject(with: receiver.requests("later")[0].body) as? [String: Any]
                #expect(((delivered?["data"] as? [String: Any])?["task_id"] as? NSNumber)?.int64Value == taskID)
                #expect(receiver.requests("later").count == 1)
            }
        }
    }
}
