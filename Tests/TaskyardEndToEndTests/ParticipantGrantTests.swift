import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TaskyardAgent
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardSecurity
import TaskyardStore
import TaskyardTestSupport

/// A participant runs nothing without a grant the server signed for exactly this call.
@Suite("Signed fan-outs")
struct ParticipantGrantTests {
    struct Call {
        let status: Int
        let body: String
    }

    /// POSTs `body` to `url` with `grant` as the bearer (none when nil).
    static func call(_ url: String, method: HTTPMethod = .POST, body: ParticipantRequest? = nil, grant: String?) async throws -> Call {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let grant { request.headers.add(name: "Authorization", value: "Bearer \(grant)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try APIJSON.encode(body)))
        }
        let response = try await HTTPTransport.shared.client.execute(request, timeout: .seconds(30))
        let data = try await response.body.collect(upTo: 1 << 20)
        return Call(status: Int(response.status.code), body: String(buffer: data))
    }

    /// Grants a participant must refuse as no grant at all (401), for n2's part of `claim`, with what each is.
    /// The private key only the server holds is read here, to make grants that are valid in every way but one.
    static func unauthenticatedGrants(_ deployment: Deployment, claim: ClaimedTaskObject) async throws -> [(String, String?)] {
        let credentials = CredentialStore(pool: deployment.store.pool)
        let key = try #require(try await credentials.publicSigningKeys(cluster: "c1").first)
        let sealed = try #require(try await credentials.newestSigningKey(cluster: "c1"))
        let serverSigner = try GrantSigner(keyID: key.id, privateKeyRaw: try TestEnvironment.keyFile.unseal(
            try #require(Hex.decode(sealed.sealedPrivateKeyHex)), cluster: "c1", keyID: sealed.id))
        let attacker = SigningKeyPair.generate()
        let attackerSigner = try GrantSigner(keyID: key.id, privateKeyRaw: attacker.privateKeyRaw)
        let publicKey = try #require(Hex.decode(key.publicKeyHex))
        let claims0 = try GrantVerifier(keys: [key.id: publicKey]).verify(claim.grant(for: "n2"))
        var expiredGrant = claims0
        expiredGrant.expiresAt = Int64(Date().timeIntervalSince1970) - 3600

        return [
            ("no grant", nil),
            ("not a grant", "hello"),
            ("a client token", deployment.adminToken),
            ("signed with another key under the server's key id", try attackerSigner.sign(claims0)),
            ("tampered claims", Self.tampered(claim.grant(for: "n2"))),
            ("expired", try serverSigner.sign(expiredGrant)),
        ]
    }

    @Test("forged, expired, wrong-node, wrong-payload and replayed-for-another-type grants are refused, and the handler never runs")
    func refusals() async throws {
        let counter = InvocationCounter()
        // n2 is a real agent whose `count` handler counts its runs; n1 is registered by hand and polled by the
        // test, which thereby holds real claims with real grants.
        try await Deployment.withHandPolledInitiator(agents: ["n2"], handlers: { registry in
            registry.register("count", ClosureHandler { work in
                await counter.record(work)
                return ["ran": true]
            })
            registry.register("other", ClosureHandler { work in
                await counter.record(work)
                return nil
            })
        }) { deployment, endpoints in
            let endpoint = try #require(endpoints["n2"])
            let both = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "count", participatingNodes: ["n1", "n2"], payload: ["volume": "v1"]))
            let onlyN1 = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "count", participatingNodes: ["n1"], payload: ["volume": "v1"]))
            let claims = try await deployment.client.poll(cluster: "c1", node: "n1", wait: .seconds(0), limit: 10).tasks
            let claim = try #require(claims.first { $0.id == both.id })
            let claimN1 = try #require(claims.first { $0.id == onlyN1.id })
            // The lease and grant are only in the claim, never in a task object.
            let shown = try await APIContractTests.send(deployment, "GET", "/api/v1/clusters/c1/tasks/\(both.id)")
            #expect(!String(decoding: shown.body, as: UTF8.self).contains(claim.lease))
            #expect(!String(decoding: shown.body, as: UTF8.self).contains("grant"))

            let url = endpoint.url(["api", "v1", "tasks", "count"])
            // The payload as the claim carries it: the grant's digest is of those bytes.
            #expect(claim.task.payload == ["volume": "v1"])
            let body = ParticipantRequest(taskID: both.id, clusterID: "c1", attempt: claim.attempt, initiator: "n1", payload: claim.task.payload)

            let unauthenticated = try await Self.unauthenticatedGrants(deployment, claim: claim)
            for (what, grant) in unauthenticated {
                let answer = try await Self.call(url, body: body, grant: grant)
                #expect(answer.status == 401, "\(what): \(answer.status) \(answer.body)")
            }
            var otherPayload = body
            otherPayload.payload = ["volume": "v2"]
            var respelled = body
            respelled.payload = RawJSON(body.payload.value)
            #expect(respelled.payload.bytes != body.payload.bytes)
            var otherAttempt = body
            otherAttempt.attempt += 1
            var otherInitiator = body
            otherInitiator.initiator = "n2"
            let forbidden: [(String, String, ParticipantRequest, String)] = [
                ("a grant that does not name n2", url, ParticipantRequest(taskID: onlyN1.id, clusterID: "c1", attempt: claimN1.attempt,
                                                                        initiator: "n1", payload: claimN1.task.payload), claimN1.grant(for: "n1")),
                ("another payload", url, otherPayload, claim.grant(for: "n2")),
                ("the same payload spelled otherwise", url, respelled, claim.grant(for: "n2")),
                ("another attempt", url, otherAttempt, claim.grant(for: "n2")),
                ("another initiator", url, otherInitiator, claim.grant(for: "n2")),
                ("replayed for another type", endpoint.url(["api", "v1", "tasks", "other"]), body, claim.grant(for: "n2")),
                ("replayed for another task", url, ParticipantRequest(taskID: onlyN1.id, clusterID: "c1", attempt: claim.attempt,
                                                                      initiator: "n1", payload: claim.task.payload), claim.grant(for: "n2")),
            ]
            for (what, target, request, grant) in forbidden {
                let answer = try await Self.call(target, body: request, grant: grant)
                #expect(answer.status == 403, "\(what): \(answer.status) \(answer.body)")
            }
            for path in [["api", "v1", "tasks", String(both.id), "cancel"], ["api", "v1", "tasks", String(both.id), "progress"]] {
                let method: HTTPMethod = path.last == "cancel" ? .POST : .GET
                #expect(try await Self.call(endpoint.url(path), method: method, grant: nil).status == 401, "\(path)")
                #expect(try await Self.call(endpoint.url(path), method: method, grant: claimN1.grant(for: "n1")).status == 403, "\(path)")
            }
            // A type that names a file other than a handler is no type at all.
            #expect(try await Self.call(endpoint.url(["api", "v1", "tasks", "count.rollback"]), body: body, grant: claim.grant(for: "n2")).status != 200)
            #expect(await counter.total == 0, "no refused call ran the handler")

            // The real grant, for the call it was made for: the handler runs.
            let accepted = try await Self.call(url, body: body, grant: claim.grant(for: "n2"))
            #expect(accepted.status == 200, "\(accepted.body)")
            #expect(await counter.total == 1)
        }
    }

    /// The grant with one character of its claims changed.
    static func tampered(_ grant: String) -> String {
        var characters = Array(grant)
        characters[5] = characters[5] == "A" ? "B" : "A"
        return String(characters)
    }
}

@Suite("Payload digests")
struct PayloadDigestTests {
    @Test("a payload's digest is of its bytes, as they travel; a request's identity is of its canonical JSON")
    func payloadBytes() throws {
        let payload = try #require(RawJSON(validating: #"{"b": 1,  "a": 2}"#))
        #expect(PayloadDigest.hex(of: payload) == TokenSecret.hash(#"{"b": 1,  "a": 2}"#))
        #expect(PayloadDigest.hex(of: payload) != PayloadDigest.hex(of: RawJSON(payload.value)), "another spelling is another digest")
    }

    @Test("the digest is of the canonical JSON: keys sorted, no whitespace, minimal escapes, 2.0 written as 2")
    func canonical() {
        let payload: JSONValue = ["b": [1, 2.5, .string("x\"y\n/")], "a": .null, "c": ["z": true, "y": 2.0]]
        #expect(PayloadDigest.hex(of: payload) == TokenSecret.hash(#"{"a":null,"b":[1,2.5,"x\"y\u000a/"],"c":{"y":2,"z":true}}"#))
        #expect(PayloadDigest.hex(of: ["a": 1, "b": 2] as JSONValue) == PayloadDigest.hex(of: ["b": 2, "a": 1] as JSONValue))
        #expect(PayloadDigest.hex(of: ["a": 1] as JSONValue) != PayloadDigest.hex(of: ["a": 2] as JSONValue))
    }
}
