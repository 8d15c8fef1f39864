import Foundation
import Synchronization
import TaskyardDomain
import TaskyardSecurity
import TaskyardStore

/// Signs a grant for every claim with the newest live key of the task's cluster. Keys live in the
/// database (made on first use) and are cached here for `refreshSeconds`, so a key rotated by another
/// replica or by hand signs here within that time.
final class GrantIssuer: Sendable {
    private struct Cached {
        let signer: GrantSigner
        let loaded: ContinuousClock.Instant
    }

    private let credentials: CredentialStore
    private let refreshSeconds: Double
    private let signers = Mutex<[String: Cached]>([:])

    init(credentials: CredentialStore, refreshSeconds: Double = 60) {
        self.credentials = credentials
        self.refreshSeconds = refreshSeconds
    }

    /// Grants for tasks just claimed (by `signer`, which the caller gets before it claims, so that a claim
    /// is never committed without the grants its answer needs), in order.
    static func grants(for claimed: [ClaimedTask], signer: GrantSigner, validFor seconds: (TaskRecord) -> Double) throws -> [String] {
        let now = Date().timeIntervalSince1970
        return try claimed.map { claim in
            let task = claim.task
            return try signer.sign(Grant(
                keyID: signer.keyID, cluster: task.clusterID, taskID: task.id, attempt: task.attempt, type: task.type,
                participants: task.participatingNodes, initiator: task.assignedNode,
                payloadDigest: PayloadDigest.hex(of: task.payload), expiresAt: Int64((now + seconds(task)).rounded(.up))))
        }
    }

    /// The cluster's live public keys, newest first; makes the first key when the cluster has none.
    func publicKeys(cluster: String) async throws -> [SigningKeyRecord] {
        let keys = try await credentials.liveSigningKeys(cluster: cluster)
        if !keys.isEmpty { return keys }
        return try await credentials.liveSigningKeys(cluster: cluster, addingIfNone: Self.newKey())
    }

    private static func newKey() -> SigningKeyRecord {
        let pair = SigningKeyPair.generate()
        return SigningKeyRecord(id: pair.id, publicKeyHex: Hex.encode(pair.publicKeyRaw), privateKeyHex: Hex.encode(pair.privateKeyRaw))
    }

    /// The cluster's signing key now.
    func signer(cluster: String) async throws -> GrantSigner {
        let now = ContinuousClock.now
        if let cached = signers.withLock({ $0[cluster] }), now - cached.loaded < .milliseconds(Int(refreshSeconds * 1000)) {
            return cached.signer
        }
        guard let newest = try await publicKeys(cluster: cluster).first, let raw = Hex.decode(newest.privateKeyHex) else {
            throw TaskyardError(.notFound, code: "cluster_not_found", message: "cluster \(cluster) does not exist")
        }
        let signer = try GrantSigner(keyID: newest.id, privateKeyRaw: raw)
        signers.withLock { $0[cluster] = Cached(signer: signer, loaded: now) }
        return signer
    }
}
