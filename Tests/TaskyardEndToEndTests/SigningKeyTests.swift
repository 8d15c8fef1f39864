import Foundation
import Postgres
import Testing
import TaskyardAgent
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardSecurity
import TaskyardStore
import TaskyardTestSupport

/// Signing keys that no reader of the database can use, and that rotate and retire.
@Suite("Signing keys")
struct SigningKeyTests {
    /// A deployment whose node n2 is a real agent counting the runs of `count`, and whose n1 is registered
    /// by hand and polled by the test, which so holds real claims with real grants.
    static func withNodes(keyRefresh: Duration = .seconds(60),
                          _ body: @escaping @Sendable (Deployment, _ participant: NodeEndpoint, InvocationCounter) async throws -> Void) async throws {
        let counter = InvocationCounter()
        try await Deployment.withHandPolledInitiator(agents: ["n2"], handlers: { registry in
            registry.register("count", ClosureHandler { work in
                await counter.record(work)
                return ["ran": true]
            })
        }, agentSettings: { $0.keyRefreshInterval = keyRefresh }) { deployment, endpoints in
            try await body(deployment, try #require(endpoints["n2"]), counter)
        }
    }

    /// Submits a `count` task on n1 and n2 and claims it as n1: the claim, with its grant.
    static func claim(_ deployment: Deployment) async throws -> ClaimedTaskObject {
        let task = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "count", participatingNodes: ["n1", "n2"]))
        return try #require(try await deployment.client.poll(cluster: "c1", node: "n1", wait: .seconds(0), limit: 10).tasks.first { $0.id == task.id })
    }

    /// Calls n2's `count` handler for `claim` with `grant`: the status.
    static func run(_ claim: ClaimedTaskObject, grant: String, at endpoint: NodeEndpoint) async throws -> Int {
        let body = ParticipantRequest(taskID: claim.id, clusterID: "c1", attempt: claim.attempt, initiator: "n1", payload: claim.task.payload)
        return try await ParticipantGrantTests.call(endpoint.url(["api", "v1", "tasks", "count"]), body: body, grant: grant).status
    }

    static func keyID(of grant: String) throws -> String {
        let claims = try #require(Data(base64Encoded: Self.padded(String(grant.prefix { $0 != "." }))))
        let object = try #require(try JSONSerialization.jsonObject(with: claims) as? [String: Any])
        return try #require(object["kid"] as? String)
    }

    static func padded(_ base64URL: String) -> String {
        let standard = base64URL.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        return standard + String(repeating: "=", count: (4 - standard.count % 4) % 4)
    }

    @Test("a database reader holds only sealed keys: nothing it can make from them signs a grant an agent accepts")
    func sealedAtRest() async throws {
        try await Self.withNodes { deployment, endpoint, counter in
            let claim = try await Self.claim(deployment)
            let genuine = try GrantVerifier(keys: [:]).verifyingNothing(claim.grant(for: "n2"))
            // What a backup or a superuser's SELECT sees: every column of every key.
            let rows: [(id: String, publicKey: Data, sealed: Data)] = try await deployment.store.pool.withConnection { connection in
                try connection.query("SELECT id, encode(public_key, 'hex') AS public, encode(sealed_private_key, 'hex') AS sealed FROM signing_keys")
                    .map { row throws(PostgresError) in
                        (try row.decode("id"), Hex.decode(try row.decode("public")) ?? Data(), Hex.decode(try row.decode("sealed")) ?? Data())
                    }
            }
            #expect(rows.count == 1)
            let columns: [String] = try await deployment.store.pool.withConnection { connection in
                try connection.query("SELECT column_name AS name FROM information_schema.columns WHERE table_name = 'signing_keys'")
                    .map { row throws(PostgresError) in try row.decode("name", as: String.self) }
            }
            #expect(!columns.contains("private_key"))
            for row in rows {
                #expect(row.sealed.count == 12 + 32 + 16, "nonce, sealed key, tag")
                #expect(throws: (any Error).self, "another key file opens nothing") {
                    try KeyFile.random().unseal(row.sealed, cluster: "c1", keyID: row.id)
                }
                // Every 32 bytes of the stored value, tried as the private key.
                for offset in 0...(row.sealed.count - 32) {
                    let candidate = row.sealed.subdata(in: offset..<(offset + 32))
                    let forged = try GrantSigner(keyID: row.id, privateKeyRaw: candidate).sign(genuine)
                    #expect(try await Self.run(claim, grant: forged, at: endpoint) == 401)
                }
            }
            #expect(await counter.total == 0, "no forged grant ran the handler")
            #expect(try await Self.run(claim, grant: claim.grant(for: "n2"), at: endpoint) == 200, "the server's own grant still runs")
        }
    }

    @Test("a rotated key signs at once; a retired key's grants are refused by the agent within its refresh period")
    func rotateAndRetire() async throws {
        try await Self.withNodes(keyRefresh: .milliseconds(500)) { deployment, endpoint, counter in
            let old = try await Self.claim(deployment)
            let oldKey = try Self.keyID(of: old.grant(for: "n2"))
            #expect(try await Self.run(old, grant: old.grant(for: "n2"), at: endpoint) == 200)

            let rotated = try await deployment.client.rotateSigningKey(cluster: "c1")
            #expect(rotated.id != oldKey)
            #expect(try await deployment.client.signingKeys(cluster: "c1").map(\.id) == [rotated.id, oldKey], "the new key first; the old still verifies")
            let fresh = try await Self.claim(deployment)
            #expect(try Self.keyID(of: fresh.grant(for: "n2")) == rotated.id, "the replica that rotated signs with the new key at once")

            try await deployment.client.retireSigningKey(cluster: "c1", id: oldKey)
            try await deployment.client.retireSigningKey(cluster: "c1", id: oldKey)
            let unknown = await #expect(throws: TaskyardClient.Failure.self) {
                try await deployment.client.retireSigningKey(cluster: "c1", id: "ed25519-0000000000000000")
            }
            #expect(unknown?.status == 404)
            #expect(try await deployment.client.signingKeys(cluster: "c1").map(\.id) == [rotated.id])
            let dbKey: String? = try await deployment.store.pool.withConnection { connection in
                try connection.query("SELECT encode(sealed_private_key, 'hex') AS sealed FROM signing_keys WHERE id = $1", [oldKey])
                    .single().decode("sealed")
            }
            #expect(dbKey == nil, "a retired key's private half is erased")

            try await eventually("n2 refuses the retired key's grant", within: .seconds(5)) {
                try await Self.run(old, grant: old.grant(for: "n2"), at: endpoint) == 401
            }
            #expect(try await Self.run(fresh, grant: fresh.grant(for: "n2"), at: endpoint) == 200)
            _ = counter
        }
    }

    @Test("60 grants naming made-up key ids cost the server at most two key fetches, and refuse alone")
    func madeUpKeyIDs() async throws {
        try await Self.withNodes { deployment, endpoint, counter in
            let claim = try await Self.claim(deployment)
            let genuine = try GrantVerifier(keys: [:]).verifyingNothing(claim.grant(for: "n2"))
            func keyFetches() async throws -> Double {
                try await deployment.client.metrics().split(separator: "\n")
                    .filter { $0.hasPrefix("taskyard_http_requests_total") && $0.contains("signing-keys") && $0.contains("GET") }
                    .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
            }
            let before = try await keyFetches()
            let attacker = SigningKeyPair.generate()
            for index in 0..<60 {
                let keyID = index.isMultiple(of: 2) ? String(format: "ed25519-%016x", index) : "not-a-key-\(index)"
                let forged = try GrantSigner(keyID: keyID, privateKeyRaw: attacker.privateKeyRaw).sign(genuine)
                #expect(try await Self.run(claim, grant: forged, at: endpoint) == 401)
            }
            let fetches = try await keyFetches() - before
            #expect(fetches <= 2, "\(fetches) fetches")
            #expect(await counter.total == 0)
            #expect(try await Self.run(claim, grant: claim.grant(for: "n2"), at: endpoint) == 200, "the genuine grant was not flushed out")
        }
    }
}

extension GrantVerifier {
    /// A grant's claims read without checking its signature (the test builds forgeries of it).
    func verifyingNothing(_ token: String) throws -> Grant {
        let claims = try #require(Data(base64Encoded: SigningKeyTests.padded(String(token.prefix { $0 != "." }))))
        return try JSONDecoder().decode(Grant.self, from: claims)
    }
}
