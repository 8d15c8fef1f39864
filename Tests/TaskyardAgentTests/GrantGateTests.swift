import Foundation
import Synchronization
import Testing
import TaskyardAPI
import TaskyardDomain
import TaskyardSecurity
@testable import TaskyardAgent

/// The participant endpoint's check of grants, with keys the test makes: what verifies, what is refused
/// (401 or 403), and how often the server is asked for keys.
@Suite("Grant gate")
struct GrantGateTests {
    let key = SigningKeyPair.generate()
    /// How often the gate asked for the keys.
    final class Fetches: Sendable {
        let count = Mutex(0)
    }
    let fetches = Fetches()

    func gate(keys: @escaping @Sendable () -> [SigningKeyPair]) -> GrantGate {
        GrantGate(cluster: "c1", node: "n2", unknownKeyRefetchInterval: .seconds(1)) { [fetches] in
            fetches.count.withLock { $0 += 1 }
            return keys().map { SigningKeyList.Key(id: $0.id, algorithm: "ed25519", publicKey: $0.publicKeyRaw.base64EncodedString()) }
        }
    }

    func grant(signedWith key: SigningKeyPair, node: String = "n2", expiresIn seconds: Int64 = 60,
               payload: RawJSON = ["volume": "v1"]) throws -> String {
        let now = Int64(Date().timeIntervalSince1970)
        let grant = Grant(keyID: key.id, cluster: "c1", taskID: 7, attempt: 2, type: "volume_create", node: node, verb: .run,
                          initiator: "n1", payloadDigest: PayloadDigest.hex(of: payload), issuedAt: now, expiresAt: now + seconds)
        return "Bearer " + (try GrantSigner(keyID: key.id, privateKeyRaw: key.privateKeyRaw).sign(grant))
    }

    @Test("a grant of the cluster's key for this node and call verifies; one for another call is 403")
    func verifiesAndMatches() async throws {
        let key = self.key
        let gate = gate { [key] }
        try await gate.refreshKeys()
        let header = try grant(signedWith: key)
        let grant = try await gate.check(authorization: header, taskID: 7, attempt: 2, type: "volume_create", initiator: "n1",
                                         payload: ["volume": "v1"], clusterID: "c1")
        #expect(grant.taskID == 7 && grant.node == "n2")
        await #expect(throws: GrantGate.Refusal.self, "another task") { try await gate.check(authorization: header, taskID: 8) }
        await #expect(throws: GrantGate.Refusal.self, "another payload") {
            try await gate.check(authorization: header, taskID: 7, payload: ["volume": "v2"])
        }
        await #expect(throws: GrantGate.Refusal.self, "another cluster") {
            try await gate.check(authorization: header, taskID: 7, clusterID: "c2")
        }
    }

    @Test("refused: no grant, a grant for another node, an expired one, one signed by a key the cluster does not have")
    func refusals() async throws {
        let key = self.key
        let gate = gate { [key] }
        try await gate.refreshKeys()
        func refusal(_ header: String?) async -> GrantGate.Refusal? {
            do { _ = try await gate.verify(authorization: header); return nil } catch { return error }
        }
        guard case .unauthenticated = await refusal(nil) else { Issue.record("no grant passed"); return }
        guard case .forbidden = await refusal(try grant(signedWith: key, node: "n3")) else { Issue.record("another node's grant passed"); return }
        guard case .unauthenticated = await refusal(try grant(signedWith: key, expiresIn: -120)) else { Issue.record("an expired grant passed"); return }
        guard case .unauthenticated = await refusal(try grant(signedWith: .generate())) else { Issue.record("a stranger's key passed"); return }
        guard case .unauthenticated = await refusal("Bearer not-a-grant") else { Issue.record("garbage passed"); return }
    }

    @Test("a key made since the last fetch is fetched once; an unknown key again within seconds costs the server nothing")
    func rotationFetchesOnce() async throws {
        let (old, new) = (key, SigningKeyPair.generate())
        let listed = Mutex([old])
        let gate = gate { listed.withLock { $0 } }
        try await gate.refreshKeys()
        #expect(fetches.count.withLock { $0 } == 1)
        // Rotated on the server: the first grant of the new key makes the gate fetch the list again.
        listed.withLock { $0 = [old, new] }
        try await Task.sleep(for: .milliseconds(1100))  // past the refetch interval of `gate`
        _ = try await gate.verify(authorization: try grant(signedWith: new))
        #expect(fetches.count.withLock { $0 } == 2)
        // Made-up keys right after: refused without asking the server again.
        for _ in 0..<5 { _ = try? await gate.verify(authorization: try grant(signedWith: .generate())) }
        #expect(fetches.count.withLock { $0 } == 2)
        // Retired: a grant verified before is trusted no more once the list no longer has its key.
        let before = try grant(signedWith: old)
        _ = try await gate.verify(authorization: before)
        listed.withLock { $0 = [new] }
        try await gate.refreshKeys()
        await #expect(throws: GrantGate.Refusal.self) { try await gate.verify(authorization: before) }
    }
}
