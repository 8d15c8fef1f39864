import Foundation
import Synchronization
import TaskyardDomain
import TaskyardSecurity
import TaskyardStore

/// Signs the grants of every claim (and of rollbacks) with the newest live key of the task's cluster. Keys live in the
/// database (made on first use), their private halves sealed with the servers' key file, and are cached
/// here for `refreshInterval`, so a key rotated or retired by another replica stops signing here within
/// that time (at once on this replica).
final class GrantIssuer: Sendable {
    private struct Cached {
        let signer: GrantSigner
        let loaded: ContinuousClock.Instant
    }

    private let credentials: CredentialStore
    private let keyFile: KeyFile
    private let refreshInterval: Duration
    private let signers = Mutex<[String: Cached]>([:])

    init(credentials: CredentialStore, keyFile: KeyFile, refreshInterval: Duration = .seconds(10)) {
        self.credentials = credentials
        self.keyFile = keyFile
        self.refreshInterval = refreshInterval
    }

    /// Grants for tasks just claimed (by `signer`, which the caller gets before it claims, so that a claim
    /// is never committed without the grants its answer needs), in order: one run grant per participant,
    /// by node.
    static func grants(for claimed: [ClaimedTask], signer: GrantSigner,
                       validFor lifetime: (TaskRecord) -> Duration) throws -> [[String: String]] {
        let now = Date().timeIntervalSince1970
        return try claimed.map { claim in
            let task = claim.task
            // Only the participants this attempt runs: the others' completed outcomes carry forward.
            return try grants(for: task, nodes: task.runningNodes, verb: .run, signer: signer,
                              issuedAt: Int64(now), expiresAt: Int64((now + lifetime(task).inSeconds).rounded(.up)))
        }
    }

    /// One grant of `verb` for each of `nodes`, on the task's current attempt, by node.
    static func grants(for task: TaskRecord, nodes: [String], verb: Grant.Verb, signer: GrantSigner,
                       issuedAt: Int64, expiresAt: Int64) throws -> [String: String] {
        let digest = PayloadDigest.hex(of: task.payload)
        var grants: [String: String] = [:]
        for node in nodes {
            grants[node] = try signer.sign(Grant(
                keyID: signer.keyID, cluster: task.clusterID, taskID: task.id, attempt: task.attempt, type: task.type,
                node: node, verb: verb, initiator: task.assignedNode, payloadDigest: digest, issuedAt: issuedAt, expiresAt: expiresAt))
        }
        return grants
    }

    /// The cluster's live public keys, newest first; makes the first key when the cluster has none.
    func publicKeys(cluster: String) async throws -> [SigningKeyRecord] {
        let keys = try await credentials.publicSigningKeys(cluster: cluster)
        if !keys.isEmpty { return keys }
        try await addKey(cluster: cluster, onlyIfNone: true)
        return try await credentials.publicSigningKeys(cluster: cluster)
    }

    /// A new key that signs from now on (a rotation); the others stay trusted until retired.
    func rotate(cluster: String) async throws -> SigningKeyRecord {
        let record = try await addKey(cluster: cluster, onlyIfNone: false)
        _ = signers.withLock { $0.removeValue(forKey: cluster) }
        return record
    }

    /// Retires a key: it signs nothing more, and agents refuse its grants once they re-read the key list.
    /// False when the cluster has no key with that id.
    func retire(cluster: String, keyID: String) async throws -> Bool {
        let retired = try await credentials.retireSigningKey(cluster: cluster, id: keyID)
        _ = signers.withLock { $0.removeValue(forKey: cluster) }
        return retired
    }

    @discardableResult
    private func addKey(cluster: String, onlyIfNone: Bool) async throws -> SigningKeyRecord {
        let pair = SigningKeyPair.generate()
        let record = SigningKeyRecord(id: pair.id, publicKeyHex: Hex.encode(pair.publicKeyRaw))
        let sealed = try keyFile.seal(pair.privateKeyRaw, cluster: cluster, keyID: pair.id)
        try await credentials.addSigningKey(record, sealedPrivateKeyHex: Hex.encode(sealed), cluster: cluster, onlyIfNone: onlyIfNone)
        return record
    }

    /// The cluster's signing key now.
    func signer(cluster: String) async throws -> GrantSigner {
        let now = ContinuousClock.now
        if let cached = signers.withLock({ $0[cluster] }), now - cached.loaded < refreshInterval {
            return cached.signer
        }
        var newest = try await credentials.newestSigningKey(cluster: cluster)
        if newest == nil {
            try await addKey(cluster: cluster, onlyIfNone: true)
            newest = try await credentials.newestSigningKey(cluster: cluster)
        }
        guard let newest, let sealed = Hex.decode(newest.sealedPrivateKeyHex) else {
            throw TaskyardError(.notFound, code: .clusterNotFound, message: "cluster \(cluster) does not exist")
        }
        let raw: Data
        do {
            raw = try keyFile.unseal(sealed, cluster: cluster, keyID: newest.id)
        } catch {
            // Another key file than the one this key was sealed with: nothing here can sign for the cluster.
            throw KeyFileMismatch(cluster: cluster, keyID: newest.id)
        }
        let signer = try GrantSigner(keyID: newest.id, privateKeyRaw: raw)
        signers.withLock { $0[cluster] = Cached(signer: signer, loaded: now) }
        return signer
    }
}

/// A signing key in the database that this server's key file does not open: the servers were started with
/// different key files. A misconfiguration, answered 500 and logged, never a grant.
struct KeyFileMismatch: Error, CustomStringConvertible {
    let cluster: String
    let keyID: String
    var description: String {
        "signing key \(keyID) of cluster \(cluster) was sealed with another key file than this server's --key-file"
    }
}
