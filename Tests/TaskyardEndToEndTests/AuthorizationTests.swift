import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardSecurity
import Postgres
@testable import TaskyardServer
import TaskyardStore
import TaskyardTestSupport

/// The contract's *Credentials and permissions*, route by route and credential by credential.
@Suite("Authorization")
struct AuthorizationTests {
    /// Who may call a route, as the contract puts it.
    enum Rule: Sendable {
        case read, submit, operate, admin
        /// read (client) or any node of the path's cluster.
        case readOrClusterNode
        /// node n1's own token (the path's node), or admin.
        case nodeN1
    }

    struct Route: Sendable, CustomTestStringConvertible {
        let method: String
        let path: String
        let body: String?
        let rule: Rule
        var testDescription: String { "\(method) \(path)" }
    }

    static let routes: [Route] = [
        Route(method: "GET", path: "/metrics", body: nil, rule: .read),
        Route(method: "GET", path: "/api/v1/clusters", body: nil, rule: .read),
        Route(method: "POST", path: "/api/v1/clusters", body: #"{"id": "c9"}"#, rule: .admin),
        Route(method: "PUT", path: "/api/v1/clusters/c1/nodes/n1", body: #"{"endpoint": "http://127.0.0.1:9"}"#, rule: .nodeN1),
        Route(method: "GET", path: "/api/v1/clusters/c1/nodes", body: nil, rule: .readOrClusterNode),
        Route(method: "GET", path: "/api/v1/clusters/c1/signing-keys", body: nil, rule: .readOrClusterNode),
        Route(method: "POST", path: "/api/v1/clusters/c1/tasks", body: #"{"type": "noop", "participating_nodes": ["n1"]}"#, rule: .submit),
        Route(method: "POST", path: "/api/v1/clusters/c1/tasks/batch",
              body: #"{"tasks": [{"type": "noop", "participating_nodes": ["n1"]}]}"#, rule: .submit),
        Route(method: "GET", path: "/api/v1/clusters/c1/tasks", body: nil, rule: .read),
        Route(method: "GET", path: "/api/v1/clusters/c1/changes?timeout=0", body: nil, rule: .read),
        Route(method: "GET", path: "/api/v1/clusters/c1/tasks/1", body: nil, rule: .read),
        Route(method: "GET", path: "/api/v1/clusters/c1/tasks/1/events", body: nil, rule: .read),
        Route(method: "GET", path: "/api/v1/clusters/c1/tasks/1/tree", body: nil, rule: .read),
        Route(method: "GET", path: "/api/v1/clusters/c1/tasks/1/wait?timeout=0", body: nil, rule: .read),
        Route(method: "POST", path: "/api/v1/clusters/c1/tasks/2/cancel", body: "{}", rule: .operate),
        Route(method: "POST", path: "/api/v1/clusters/c1/tasks/1/retry", body: nil, rule: .operate),
        Route(method: "DELETE", path: "/api/v1/clusters/c1/tasks/1", body: nil, rule: .operate),
        Route(method: "GET", path: "/api/v1/tasks/c1/n1?wait=0&limit=1", body: nil, rule: .nodeN1),
        Route(method: "POST", path: "/api/v1/tasks/c1/n1/heartbeat", body: #"{"tasks": []}"#, rule: .nodeN1),
        Route(method: "POST", path: "/api/v1/tasks/c1/n1/states",
              body: #"{"reports": [{"task_id": 1, "attempt": 1, "lease": "x", "state": "completed"}]}"#, rule: .nodeN1),
        Route(method: "POST", path: "/api/v1/tasks/c1/n1/1/state", body: #"{"attempt": 1, "lease": "x", "state": "completed"}"#, rule: .nodeN1),
        Route(method: "GET", path: "/api/v1/tokens", body: nil, rule: .admin),
        Route(method: "POST", path: "/api/v1/tokens", body: #"{"kind": "client", "name": "x", "scopes": ["read"]}"#, rule: .admin),
        Route(method: "DELETE", path: "/api/v1/tokens/999999", body: nil, rule: .admin),
    ]

    /// The credentials of the table, and whether each may call a route with a rule.
    enum Credential: String, CaseIterable, Sendable {
        case anonymous, revoked, expired, readC1, submitC1, operateC1, adminC2, nodeN1, nodeN2, admin

        /// nil: 401; false: 403; true: let in (any other status).
        func allowed(_ rule: Rule, route: Route) -> Bool? {
            switch self {
            case .anonymous, .revoked, .expired: return nil
            case .admin: return true
            case .adminC2:
                // Bound to c2: nothing of c1, no new cluster c9; it may list (its own) clusters and tokens,
                // and DELETE of a token id it cannot see is a 404.
                // It may read the metrics too: its own cluster's series.
                return route.method == "GET" && (route.path == "/api/v1/clusters" || route.path == "/api/v1/tokens"
                                                 || route.path == "/metrics")
                    || route.path == "/api/v1/tokens/999999"
            case .readC1: return rule == .read || rule == .readOrClusterNode
            case .submitC1: return rule == .submit
            case .operateC1: return rule == .operate
            case .nodeN1: return rule == .nodeN1 || rule == .readOrClusterNode
            case .nodeN2: return rule == .readOrClusterNode
            }
        }
    }

    @Test("every route × every credential: 401 without a valid token, 403 when it may not, and a refused request writes nothing")
    func table() async throws {
        try await Deployment.run(nodes: []) { deployment in
            let store = deployment.store
            _ = try await store.clusters.createCluster(id: "c2", name: "other")
            for node in ["n1", "n2"] {
                _ = try await store.clusters.registerNode(cluster: "c1", id: node, endpoint: "http://127.0.0.1:9")
            }
            // Task 1 finished (for retry and delete); task 2 queued (for cancel).
            _ = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
            _ = try await deployment.client.cancel(cluster: "c1", id: 1)
            _ = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))

            let credentials = CredentialStore(pool: store.pool)
            var tokens: [Credential: String] = [:]
            tokens[.admin] = deployment.adminToken
            tokens[.readC1] = try await store.mintToken(scopes: [.read], cluster: "c1")
            tokens[.submitC1] = try await store.mintToken(scopes: [.submit], cluster: "c1")
            tokens[.operateC1] = try await store.mintToken(scopes: [.operate], cluster: "c1")
            tokens[.adminC2] = try await store.mintToken(scopes: [.admin], cluster: "c2")
            tokens[.nodeN1] = try await store.mintNodeToken(cluster: "c1", node: "n1")
            tokens[.nodeN2] = try await store.mintNodeToken(cluster: "c1", node: "n2")
            tokens[.revoked] = try await store.mintToken(scopes: [.admin])
            tokens[.expired] = try await store.mintToken(TokenRequest(kind: .client, name: "soon", scopes: [.admin],
                                                                      expiresAt: Date().addingTimeInterval(3600)))
            let revoked = try #require(try await credentials.token(secretHash: TokenSecret.hash(tokens[.revoked]!)))
            try await credentials.revokeToken(id: revoked.id)
            try await store.expireToken(named: "soon")

            // Admin last: its requests change what the others would find.
            for credential in Credential.allCases {
                for route in Self.routes {
                    let before = try await Self.rowCounts(store)
                    let answer = try await APIContractTests.send(deployment, route.method, route.path, body: route.body,
                                                                 headers: tokens[credential].map { ["Authorization": "Bearer \($0)"] } ?? [:],
                                                                 authorized: false)
                    let what = "\(credential.rawValue) \(route.method) \(route.path): \(answer.status) \(String(decoding: answer.body, as: UTF8.self).prefix(200))"
                    switch credential.allowed(route.rule, route: route) {
                    case nil:
                        #expect(answer.status == 401, "\(what)")
                        #expect(answer.headers["www-authenticate"]?.hasPrefix("Bearer") == true, "\(what)")
                        #expect(try APIJSON.decode(ErrorBody.self, from: answer.body).error.code.rawValue == "unauthenticated", "\(what)")
                    case false?:
                        #expect(answer.status == 403, "\(what)")
                        #expect(try APIJSON.decode(ErrorBody.self, from: answer.body).error.code.rawValue == "forbidden", "\(what)")
                    case true?:
                        #expect(answer.status != 401 && answer.status != 403 && answer.status < 500, "\(what)")
                    }
                    if credential.allowed(route.rule, route: route) != true {
                        #expect(try await Self.rowCounts(store) == before, "a refused request wrote something: \(what)")
                    }
                }
            }
            // The routes anyone may call.
            for path in ["/healthz", "/readyz", "/openapi.json", "/ui", "/ui/app.js", "/ui/app.css"] {
                #expect(try await APIContractTests.send(deployment, "GET", path, authorized: false).status == 200, "\(path)")
            }
        }
    }

    @Test("a token of a shape no issued token has is refused without a lookup; an unknown well-formed one is looked up")
    func malformedTokensCostNoQuery() async throws {
        try await Deployment.run(nodes: []) { deployment in
            // Reads of api_tokens, as the statistics count them (flushed by each backend within a second or so).
            func lookups() async throws -> Int {
                try await deployment.store.pool.withConnection { connection in
                    _ = try connection.query("SELECT pg_stat_clear_snapshot()")
                    return try connection.query("SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) AS n FROM pg_stat_user_tables WHERE relname = 'api_tokens'")
                        .single().decode("n", as: Int.self)
                }
            }
            func status(_ token: String) async throws -> Int {
                try await APIContractTests.send(deployment, "GET", "/api/v1/clusters", headers: ["Authorization": "Bearer \(token)"], authorized: false).status
            }
            let before = try await lookups()
            for index in 0..<50 {
                let malformed = ["x\(index)", "tyd_short\(index)", "tyd_" + String(repeating: "!", count: 43), String(repeating: "a", count: 47)][index % 4]
                #expect(try await status(malformed) == 401)
            }
            // A well-formed secret nobody was given is looked up (and refused): the count moves by about one.
            #expect(try await status(TokenSecret.generate()) == 401)
            var after = before
            try await eventually("the statistics show the one lookup", within: .seconds(15)) {
                after = try await lookups()
                return after > before
            }
            #expect(after - before < 10, "\(after - before) lookups of api_tokens for 50 malformed tokens and one unknown")
        }
    }

    static func rowCounts(_ store: TaskStore) async throws -> [Int] {
        try await store.pool.withConnection { connection in
            try ["clusters", "nodes", "tasks", "task_events", "api_tokens", "signing_keys"].map { table in
                try connection.query("SELECT count(*) AS n FROM \(table)").single().decode("n", as: Int.self)
            }
        }
    }

    @Test("tokens through the API: the secret shown once, only its digest stored, listed without it, revoked at once")
    func tokenRoutes() async throws {
        try await Deployment.run(nodes: []) { deployment in
            let created = try await deployment.client.createToken(TokenRequest(kind: .client, name: "ci", scopes: [.submit, .read],
                                                                              clusterID: "c1"))
            let secret = try #require(created.token)
            #expect(secret.hasPrefix("tyd_") && secret.count >= 40)
            #expect(created.scopes == [.submit, .read] && created.clusterID == "c1")
            let stored: [String] = try await deployment.store.pool.withConnection { connection in
                try connection.query("SELECT encode(secret_hash, 'hex') AS h FROM api_tokens").map { row throws(PostgresError) in try row.decode("h") }
            }
            #expect(!stored.contains(secret) && stored.contains(TokenSecret.hash(secret)), "the digest, never the secret")
            let ci = deployment.client(token: secret)
            _ = try await ci.clusters()
            let listed = try await deployment.client.tokens()
            #expect(listed.allSatisfy { $0.token == nil })
            let row = try #require(listed.first { $0.id == created.id })
            #expect(row.revokedAt == nil)
            // last_used_at is written in batches, within a few seconds.
            try await eventually("last_used_at is recorded", within: .seconds(10)) {
                try await deployment.client.tokens().first { $0.id == created.id }?.lastUsedAt != nil
            }
            let node = try await deployment.client.createToken(TokenRequest(kind: .node, name: "n7", clusterID: "c1", nodeID: "n7"))
            #expect(node.kind == .node && node.nodeID == "n7" && node.scopes.isEmpty)
            let bad = try await #require(throws: TaskyardClient.Failure.self) {
                _ = try await deployment.client.createToken(TokenRequest(kind: .node, name: "n8", clusterID: "c1"))
            }
            #expect(bad.status == 422 && bad.error?.error.field == "node_id")

            try await deployment.client.revokeToken(id: created.id)
            try await eventually("the revoked token is refused", within: .seconds(5)) {
                (try? await ci.clusters()) == nil
            }
            let refused = try await #require(throws: TaskyardClient.Failure.self) { _ = try await ci.clusters() }
            #expect(refused.status == 401)
            #expect(try await deployment.client.tokens().first { $0.id == created.id }?.revokedAt != nil)
        }
    }
}

@Suite("The token cache")
struct TokenCacheTests {
    static let token = APIToken(id: 7, kind: .client, name: "ops", scopes: [.read], clusterID: nil, nodeID: nil,
                                createdAt: Date(), expiresAt: nil, lastUsedAt: nil, revokedAt: nil)

    @Test("a flood of made-up tokens pushes out the least used records, never a token in use")
    func floodKeepsTokensInUse() {
        var cache = TokenCache(capacity: 8, maximumAge: .seconds(60))
        var now = ContinuousClock.now
        cache.insert(Self.token, for: "real", now: now)
        for index in 0..<1_000 {
            now += .milliseconds(1)
            if index.isMultiple(of: 3) { #expect(cache.lookup("real", now: now) == .some(Self.token), "round \(index)") }
            cache.insert(nil, for: "made-up-\(index)", now: now)
            #expect(cache.count <= 8)
        }
        #expect(cache.lookup("real", now: now) == .some(Self.token), "still cached: no query for the token in use")
        #expect(cache.lookup("made-up-999", now: now) == .some(nil), "an unknown token is remembered as unknown")
        #expect(cache.lookup("made-up-0", now: now) == nil, "the least used went")
    }

    @Test("records are trusted for the cache's age only, and stale ones make room first")
    func ageing() {
        var cache = TokenCache(capacity: 2, maximumAge: .seconds(2))
        let start = ContinuousClock.now
        cache.insert(Self.token, for: "a", now: start)
        cache.insert(nil, for: "b", now: start + .seconds(1))
        #expect(cache.lookup("a", now: start + .milliseconds(1_999)) == .some(Self.token))
        #expect(cache.lookup("a", now: start + .seconds(2)) == nil, "a revocation is seen within the cache's age")
        cache.insert(nil, for: "c", now: start + .milliseconds(2_500))
        #expect(cache.lookup("b", now: start + .milliseconds(2_500)) == .some(nil), "only the stale record made room")
    }
}

@Suite("Stream slots")
struct StreamSlotsTests {
    @Test("each token holds at most its share; other tokens are untouched; a released or dropped slot comes back")
    func shares() throws {
        let slots = StreamSlots()
        var held = (0..<3).compactMap { _ in try? slots.take(1, limit: 3).get() }
        #expect(held.count == 3)
        #expect((try? slots.take(1, limit: 3).get()) == nil, "the fourth of token 1 is refused")
        #expect((try? slots.take(2, limit: 3).get()) != nil, "token 2 is untouched")
        held[0].release()
        held[0].release()
        let again = try? slots.take(1, limit: 3).get()
        #expect(again != nil, "a released slot comes back, once")
        #expect((try? slots.take(1, limit: 3).get()) == nil)
        held.removeLast()
        #expect((try? slots.take(1, limit: 3).get()) != nil, "a dropped slot comes back too")
    }

    @Test("one client address holds at most its share, whatever tokens it uses; other addresses are untouched")
    func sharesPerAddress() throws {
        let slots = StreamSlots()
        let held = (1...4).compactMap { token in try? slots.take(Int64(token), limit: 8, address: "10.0.0.1", addressLimit: 4).get() }
        #expect(held.count == 4)
        guard case .failure(.address) = slots.take(5, limit: 8, address: "10.0.0.1", addressLimit: 4) else {
            Issue.record("a fifth stream from one address with a fresh token was let in")
            return
        }
        #expect((try? slots.take(5, limit: 8, address: "10.0.0.2", addressLimit: 4).get()) != nil)
        held[0].release()
        #expect((try? slots.take(6, limit: 8, address: "10.0.0.1", addressLimit: 4).get()) != nil, "a released slot counts for its address")
    }
}
