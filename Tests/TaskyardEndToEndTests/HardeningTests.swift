import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing
import TaskyardAgent
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardSecurity
import TaskyardServer
import TaskyardTestSupport

/// Endpoints that cannot be abused, participants whose answers are never trusted blindly, handlers that
/// get the least they need, and a second replica that honours a revocation within seconds.
@Suite("Hardening")
struct HardeningTests {
    static let endpoints: [(String, Bool)] = [
        ("not a url", false), ("http://h:1/x", false), ("http://h:1?x=", false), ("ftp://h:1", false),
        ("http://user@h:1", false), ("http://h", false), ("http://h:1/", false), ("http://h:1#f", false),
        ("http://h:99999", false), ("", false), ("javascript:alert(1)", false), ("http://h:1\\@evil:2", false),
        ("http://127.0.0.1:7001", true), ("https://node-1.example:8443", true), ("https://[::1]:7001", true),
    ]

    @Test("registration takes http(s)://host:port and nothing else: 422 naming endpoint, and nothing written")
    func endpointRule() async throws {
        try await Deployment.run(nodes: []) { deployment in
            for (endpoint, valid) in Self.endpoints {
                let before = try await AuthorizationTests.rowCounts(deployment.store)
                let body = try APIJSON.encode(RegisterNodeRequest(endpoint: endpoint))
                let answer = try await APIContractTests.send(deployment, "PUT", "/api/v1/clusters/c1/nodes/n1",
                                                             body: String(decoding: body, as: UTF8.self))
                if valid {
                    #expect(answer.status == 200, "\(endpoint): \(String(decoding: answer.body, as: UTF8.self))")
                } else {
                    #expect(answer.status == 422, "\(endpoint): \(answer.status)")
                    #expect(try APIJSON.decode(ErrorBody.self, from: answer.body).error.field == "endpoint", "\(endpoint)")
                    #expect(try await AuthorizationTests.rowCounts(deployment.store) == before, "\(endpoint)")
                }
            }
        }
    }

    /// Serves `router` on a loopback port of its own (a fake node) while `body` runs with that port.
    static func serving(_ router: Router<BasicRequestContext>, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        let (ports, announce) = AsyncStream<Int>.makeStream()
        let fake = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                               onServerRunning: { announce.yield($0.localAddress?.port ?? 0) }, logger: Deployment.quietLogger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await fake.serveUntilCancelled() }
            var iterator = ports.makeAsyncIterator()
            try await body(try #require(await iterator.next()))
            group.cancelAll()
        }
    }

    @Test("a participant's redirect is not followed, a 2xx that is no participant result is a failure, and its raw body never reaches the task")
    func untrustedAnswers() async throws {
        let trapped = Mutex(0)
        let router = Router()
        router.post("/api/v1/tasks/:type") { _, context -> Response in
            switch context.parameters.get("type") {
            case "redirect":
                var response = Response(status: .temporaryRedirect)
                response.headers[.location] = "/trap"
                return response
            case "html":
                return Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: "<html>fine</html>")))
            default:
                return Response(status: .internalServerError,
                                body: ResponseBody(byteBuffer: ByteBuffer(string: "SECRET-INTERNAL-DATA at 10.0.0.7")))
            }
        }
        router.post("/trap") { _, _ -> HTTPResponse.Status in
            trapped.withLock { $0 += 1 }
            return .ok
        }
        try await Self.serving(router) { port in
            try await Deployment.run(nodes: ["n1"], handlers: { _ in
                var registry = HandlerRegistry.builtins()
                for type in ["redirect", "html", "leak"] { registry.register(type, ClosureHandler { _ in nil }) }
                return registry
            }) { deployment in
                _ = try await deployment.client.registerNode(cluster: "c1", node: "n2",
                                                             RegisterNodeRequest(endpoint: "http://127.0.0.1:\(port)"))
                for (type, expected) in [("redirect", "HTTP 307"), ("html", "without a participant result"), ("leak", "HTTP 500")] {
                    let task = try await deployment.client.submit(cluster: "c1",
                        SubmitTaskRequest(type: type, participatingNodes: ["n1", "n2"], maxAttempts: 1))
                    let detail = try await deployment.finished(task.id)
                    #expect(detail.task.state == .failed, "\(type)")
                    let n2 = try #require(detail.task.participants.first { $0.node == "n2" })
                    #expect(n2.state == .failed)
                    #expect(n2.error?.contains(expected) == true, "\(type): \(n2.error ?? "")")
                    #expect(detail.task.error?.contains("SECRET") == false && n2.error?.contains("SECRET") == false)
                }
                #expect(trapped.withLock { $0 } == 0, "the redirect was followed")
            }
        }
    }

    @Test("a participant answering a negative progress harms no task: its initiator's heartbeats go on, another task keeps its lease")
    func negativeProgressFromAPeer() async throws {
        let router = Router()
        // A participant that works for three seconds and says, meanwhile, that it is at -5 of 1.
        router.post("/api/v1/tasks/:target") { _, _ -> Response in
            try await Task.sleep(for: .seconds(3))
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"result": null}"#)))
        }
        router.get("/api/v1/tasks/:target/progress") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "application/json"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"completed": -5, "total": 1}"#)))
        }
        try await Self.serving(router) { port in
            try await Deployment.run(nodes: ["n1"], handlers: { _ in
                var registry = HandlerRegistry.builtins()
                registry.register("probe", ClosureHandler { _ in nil })
                registry.register("slow", ClosureHandler { _ in
                    try await Task.sleep(for: .seconds(4))
                    return nil
                })
                return registry
            }, agentSettings: { $0.heartbeatInterval = .milliseconds(200) },
               serverSettings: { $0.lease = .seconds(1.5); $0.leaseExpirer.interval = .milliseconds(200) }) { deployment in
                _ = try await deployment.client.registerNode(cluster: "c1", node: "n2",
                                                             RegisterNodeRequest(endpoint: "http://127.0.0.1:\(port)"))
                let probe = try await deployment.client.submit(cluster: "c1",
                    SubmitTaskRequest(type: "probe", participatingNodes: ["n1", "n2"], maxAttempts: 1))
                let slow = try await deployment.client.submit(cluster: "c1",
                    SubmitTaskRequest(type: "slow", participatingNodes: ["n1"], maxAttempts: 1))
                var lowest = 0.0
                while try await deployment.client.task(cluster: "c1", id: probe.id).task.state.isTerminal == false {
                    if let completed = ProgressTests.number(try await deployment.client.task(cluster: "c1", id: probe.id).task.progress?["completed"]) {
                        lowest = min(lowest, completed)
                    }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(lowest >= 0, "the peer's negative progress reached the task")
                #expect(try await deployment.finished(probe.id).task.state == .completed)
                let other = try await deployment.finished(slow.id).task
                #expect(other.state == .completed, "\(other.error ?? "")")
                #expect(other.attempt == 1, "the other task lost its lease while its agent's heartbeats were refused")
            }
        }
    }

    @Test("a heartbeat with one senseless progress renews every lease: the bad progress is dropped alone")
    func heartbeatDropsBadProgressAlone() async throws {
        try await Deployment.run(nodes: []) { deployment in
            _ = try await deployment.client.registerNode(cluster: "c1", node: "n1", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            for _ in 0..<2 { _ = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"])) }
            let claims = try await deployment.client.poll(cluster: "c1", node: "n1", wait: .seconds(0), limit: 10).tasks
            #expect(claims.count == 2)
            let items = zip(claims, [#"{"completed": -1, "total": 1}"#, #"{"completed": 1, "total": 2}"#]).map { claim, progress in
                #"{"id": \#(claim.id), "attempt": \#(claim.attempt), "lease": "\#(claim.lease)", "progress": \#(progress)}"#
            }
            let answer = try await APIContractTests.send(deployment, "POST", "/api/v1/tasks/c1/n1/heartbeat",
                                                         body: #"{"tasks": [\#(items.joined(separator: ", "))]}"#)
            #expect(answer.status == 200, "\(answer.text)")
            #expect(answer.json["lost"] == [], "\(answer.text)")
            let bad = try await deployment.client.task(cluster: "c1", id: claims[0].id).task
            let good = try await deployment.client.task(cluster: "c1", id: claims[1].id).task
            #expect(bad.progress == nil && bad.leaseExpiresAt != nil)
            #expect(ProgressTests.number(good.progress?["completed"]) == 1)
        }
    }

    @Test("an executable handler sees no agent secret: a minimal environment, --handler-env on purpose, files in a 0700 folder removed after")
    func handlerHygiene() async throws {
        // The agent runs in this process: its environment is this process's. One of its variables is passed
        // on purpose; every other one (this process's own secrets, whatever they are) must stay out.
        let minimal: Set<String> = ["PATH", "HOME", "LANG", "PWD", "SHLVL", "_", "OLDPWD"]
        let agentOnly = ProcessInfo.processInfo.environment.keys.filter { !minimal.contains($0) && !$0.hasPrefix("TASKYARD_") }.sorted()
        let passed = try #require(agentOnly.first { !$0.contains("=") && !$0.contains(" ") }, "this process has variables of its own")
        let folder = try TestEnvironment.makeExecutables([
            "showenv": """
                #!/bin/sh
                cat > /dev/null
                printf '{"env": "%s", "dir": "%s", "mode": "%s", "input": "%s"}' \
                  "$(env | cut -d= -f1 | tr '\\n' ' ')" "$(pwd)" "$(stat -c %a .)" "$(stat -c %a stdin.json)"
                """,
        ])
        defer { try? FileManager.default.removeItem(at: folder) }
        try await Deployment.run(nodes: ["n1"], handlers: { _ in .builtins(directory: folder) },
                                 agentSettings: { $0.handlerEnvironment = [passed] }) { deployment in
            let task = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "showenv", participatingNodes: ["n1"]))
            let detail = try await deployment.finished(task.id)
            #expect(detail.task.state == .completed, "\(detail.task.error ?? "")")
            let result = try #require(detail.task.result?["n1"])
            guard case .string(let environment)? = result["env"], case .string(let directory)? = result["dir"] else {
                Issue.record("no env in \(result)")
                return
            }
            let names = Set(environment.split(separator: " ").map(String.init))
            #expect(names.contains(passed), "--handler-env passes \(passed) on purpose: \(names.sorted())")
            #expect(names.contains("TASKYARD_TASK_ID") && names.contains("TASKYARD_NODE") && names.contains("PATH"))
            let leaked = names.subtracting(minimal).subtracting([passed]).filter { !$0.hasPrefix("TASKYARD_") }
            #expect(leaked.isEmpty, "the agent's own variables reached the handler: \(leaked.sorted())")
            #expect(!names.contains("TASKYARD_TOKEN"))
            #expect(result["mode"] == "700" && result["input"] == "600", "\(result)")
            #expect(!FileManager.default.fileExists(atPath: directory), "the handler's folder is removed after the run")
        }
    }

    @Test("with --handler-user, an executable handler runs as that user: it cannot read the agent's token file, and works in a folder of its own",
          .enabled(if: geteuid() == 0, "handing handlers another user needs root"))
    func handlerUser() async throws {
        // The agent's token file: readable by the agent's user (root here) only.
        let secret = FileManager.default.temporaryDirectory.appending(path: "taskyard-token-\(UUID().uuidString)")
        #expect(FileManager.default.createFile(atPath: secret.path, contents: Data("tyd_secret\n".utf8), attributes: [.posixPermissions: 0o600]))
        defer { try? FileManager.default.removeItem(at: secret) }
        let folder = try TestEnvironment.makeExecutables([
            "whoami": """
                #!/bin/sh
                cat > /dev/null
                if cat '\(secret.path)' >/dev/null 2>&1; then read=true; else read=false; fi
                if touch ./scratch 2>/dev/null; then wrote=true; else wrote=false; fi
                printf '{"uid": %s, "read_token": %s, "wrote_own_folder": %s}' "$(id -u)" "$read" "$wrote"
                """,
        ])
        defer { try? FileManager.default.removeItem(at: folder) }
        let nobody = try HandlerUser(named: "nobody")
        try await Deployment.run(nodes: ["n1"], handlers: { _ in .builtins(directory: folder) },
                                 agentSettings: { $0.handlerUser = nobody }) { deployment in
            let task = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "whoami", participatingNodes: ["n1"]))
            let detail = try await deployment.finished(task.id)
            #expect(detail.task.state == .completed, "\(detail.task.error ?? "")")
            let result = try #require(detail.task.result?["n1"])
            #expect(result["uid"] == .integer(Int64(nobody.uid)), "\(result)")
            #expect(result["read_token"] == false, "the handler read the agent's token file")
            #expect(result["wrote_own_folder"] == true, "\(result)")
        }
    }

    @Test("a revocation on one server replica is honoured by another within seconds")
    func revocationAcrossReplicas() async throws {
        try await Deployment.run(nodes: []) { deployment in
            let (ports, announce) = AsyncStream<Int>.makeStream()
            var configuration = ServerConfiguration(keyFile: TestEnvironment.keyFile)
            configuration.port = 0
            configuration.maintenanceEnabled = false
            let second = try TaskyardHTTPServer.application(store: deployment.store, configuration: configuration,
                                                            logger: Deployment.quietLogger) { announce.yield($0) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await second.serveUntilCancelled() }
                var iterator = ports.makeAsyncIterator()
                let port = try #require(await iterator.next())
                let created = try await deployment.client.createToken(TokenRequest(kind: .client, name: "ops", scopes: [.read]))
                let onSecond = TaskyardClient(baseURL: "http://127.0.0.1:\(port)", token: created.token)
                _ = try await onSecond.clusters()
                try await deployment.client.revokeToken(id: created.id)
                let revoked = ContinuousClock.now
                try await eventually("the second replica refuses the revoked token", within: .seconds(10)) {
                    do {
                        _ = try await onSecond.clusters()
                        return false
                    } catch let failure as TaskyardClient.Failure {
                        return failure.status == 401
                    }
                }
                let took = ContinuousClock.now - revoked
                #expect(took < .seconds(5), "took \(took)")
                group.cancelAll()
            }
        }
    }

    @Test("an open change stream, and a wait, end within seconds of their token's revocation")
    func streamEndsOnRevocation() async throws {
        try await Deployment.run(nodes: []) { deployment in
            let created = try await deployment.client.createToken(TokenRequest(kind: .client, name: "watcher", scopes: [.read]))
            var request = HTTPClientRequest(url: deployment.serverURL + "/api/v1/clusters/c1/changes")
            request.headers.add(name: "Authorization", value: "Bearer \(try #require(created.token))")
            let response = try await HTTPTransport.shared.client.execute(request, timeout: .seconds(60))
            #expect(response.status == .ok)
            try await deployment.client.revokeToken(id: created.id)
            let revoked = ContinuousClock.now
            // The stream sends nothing more, then ends: the iterator finishes (a keep-alive would come only
            // after 15 s, past the bound).
            let ended = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    for try await _ in response.body {}
                    return true
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(10))
                    return false
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
            #expect(ended, "the stream outlived its token by 10 s")
            let took = ContinuousClock.now - revoked
            #expect(took < .seconds(6), "took \(took)")

            // A wait on a task that will not finish: refused 401 at its next re-check once its token is revoked.
            _ = try await deployment.client.registerNode(cluster: "c1", node: "n9", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            let stuck = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n9"]))
            let waiter = try await deployment.client.createToken(TokenRequest(kind: .client, name: "waiter", scopes: [.read]))
            var waiting = deployment.client
            waiting.token = waiter.token
            let started = ContinuousClock.now
            async let answer: Int = {
                do {
                    _ = try await waiting.wait(cluster: "c1", id: stuck.id, timeout: .seconds(60))
                    return 200
                } catch let failure as TaskyardClient.Failure {
                    return failure.status
                }
            }()
            try await Task.sleep(for: .milliseconds(300))
            try await deployment.client.revokeToken(id: waiter.id)
            #expect(try await answer == 401)
            #expect(ContinuousClock.now - started < .seconds(15), "the wait outlived its token")
        }
    }

    @Test("past the clients' share of connections only agents are served: a client gets 503 server_busy, a node's poll goes on")
    func connectionsReservedForAgents() async throws {
        // A client share of none: every connection is in the agents' reserve.
        try await Deployment.run(nodes: [], serverSettings: { $0.maximumConnections = 0; $0.nodeConnectionReserve = 64 }) { deployment in
            let client = try await APIContractTests.send(deployment, "GET", "/api/v1/clusters/c1/tasks")
            #expect(client.status == 503 && client.json["error"]?["code"] == "server_busy", "\(client.text)")
            #expect(client.headers["retry-after"] == "1")
            var node = deployment.client
            node.token = try await deployment.store.mintNodeToken(cluster: "c1", node: "n1")
            _ = try await node.registerNode(cluster: "c1", node: "n1", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            #expect(try await node.poll(cluster: "c1", node: "n1", wait: .seconds(0), limit: 1).tasks.isEmpty)
            #expect(try await APIContractTests.send(deployment, "GET", "/healthz", authorized: false).status == 200)
        }
    }

    @Test("an agent's participant endpoint holds at most --max-connections: one more is closed as it arrives")
    func participantEndpointConnectionCap() async throws {
        // On a loopback address of its own: a stray connection to a port the kernel gave an earlier test's
        // agent (a straggler of that test still calling it) must not take one of the two places.
        try await Deployment.run(nodes: ["n1"], agentSettings: { $0.maximumConnections = 2; $0.listenHost = "127.0.0.2" }) { deployment in
            let endpoint = try NodeEndpoint(parsing: try #require(try await deployment.client.nodes(cluster: "c1").first?.endpoint))
            let (host, port) = (endpoint.host, endpoint.port)
            #expect(host == "127.0.0.2")
            // Each held connection is answered once before the next opens: connections accepted together are set up
            // on different event loops, in no set order, and the one counted third (closed) need not be the third made.
            var held: [any Channel] = []
            defer { for channel in held { channel.close(promise: nil) } }
            for _ in 0..<2 {
                let answered = MultiThreadedEventLoopGroup.singleton.any().makePromise(of: Void.self)
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .channelInitializer { channel in channel.pipeline.addHandler(FirstReadSignal(answered)) }
                    .connect(host: host, port: port).get()
                held.append(channel)
                try await channel.writeAndFlush(ByteBuffer(string: "GET /healthz HTTP/1.1\r\nHost: \(host)\r\n\r\n")).get()
                try await answered.futureResult.get()
            }
            let third = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: host, port: port).get()
            try await eventually("the third connection is closed", within: .seconds(5)) { !third.isActive }
            try await Task.sleep(for: .milliseconds(200))
            #expect(held.allSatisfy { $0.isActive }, "the first two stay open")
            third.close(promise: nil)
        }
    }

    @Test("a token past its share of change streams and waits gets 429 too_many_streams with Retry-After, for both routes")
    func streamsPerToken() async throws {
        // A share of none: every long request is one too many (the counting itself is StreamSlotsTests').
        try await Deployment.run(nodes: [], serverSettings: { $0.maximumStreamsPerToken = 0 }) { deployment in
            _ = try await deployment.client.registerNode(cluster: "c1", node: "n9", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            let stuck = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n9"]))
            for path in ["/api/v1/clusters/c1/changes?timeout=0", "/api/v1/clusters/c1/tasks/\(stuck.id)/wait?timeout=0"] {
                let refused = try await APIContractTests.send(deployment, "GET", path)
                #expect(refused.status == 429, "\(path)")
                #expect(try APIJSON.decode(ErrorBody.self, from: refused.body).error.code.rawValue == "too_many_streams")
                #expect(refused.headers["retry-after"] == "1")
            }
            #expect(try await APIContractTests.send(deployment, "GET", "/healthz", authorized: false).status == 200)
        }
    }
}

/// Completes its promise when the first bytes arrive on its channel (or fails it when the channel closes first).
private final class FirstReadSignal: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let promise: EventLoopPromise<Void>

    init(_ promise: EventLoopPromise<Void>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { promise.succeed() }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.eof)
        context.fireChannelInactive()
    }
}
