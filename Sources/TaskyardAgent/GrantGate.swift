import Foundation
import HTTPTypes
import Hummingbird
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardSecurity
import Synchronization

/// The participant endpoint's check: a call runs nothing unless its `Authorization: Bearer <grant>`
/// verifies with a key of this node's cluster, has not expired, is for this node and the call's verb, and
/// matches the call.
/// Keys come from the server (`GET …/signing-keys`): fetched at start, every `keyRefreshInterval` (so that a
/// retired key's grants are refused here within that time), and when a grant names a key this node has not
/// seen (a rotation) — but never for a key id of a shape no key has, nor again within a few seconds of the
/// last fetch: made-up key ids cost the server no requests beyond one every few seconds.
actor GrantGate {
    /// The cluster's signing keys as the server lists them (`GET …/signing-keys`).
    typealias KeySource = @Sendable () async throws -> [SigningKeyList.Key]
    private let fetchKeys: KeySource
    private let cluster: String
    private let node: String
    /// Read by every call at once, outside the actor (which only fetches keys): verifying is a tenth of a
    /// busy agent's CPU, and one actor verifying every call in turn held all of them up.
    private let verifier = Mutex(GrantVerifier(keys: [:]))
    /// Grants verified already, with their expiry: a batch's header grant is its first call's, and
    /// progress and cancel calls repeat a grant. Dropped whole when full.
    private let verified = Mutex<[String: Grant]>([:])
    private static let verifiedLimit = 4096
    private var lastFetch: ContinuousClock.Instant?

    init(client: TaskyardClient, cluster: String, node: String) {
        self.init(cluster: cluster, node: node) { try await client.signingKeys(cluster: cluster) }
    }

    /// A gate reading its keys from `fetchKeys` (a test's keys, without a server).
    init(cluster: String, node: String, unknownKeyRefetchInterval: Duration = .seconds(5), fetchKeys: @escaping KeySource) {
        self.fetchKeys = fetchKeys
        self.unknownKeyRefetchInterval = unknownKeyRefetchInterval
        self.cluster = cluster
        self.node = node
    }

    enum Refusal: Error, Sendable {
        /// No grant, or one that cannot be trusted: 401.
        case unauthenticated(String)
        /// A valid grant for something else: 403.
        case forbidden(String)

        var response: (status: HTTPResponse.Status, code: ErrorCode, message: String) {
            switch self {
            case .unauthenticated(let message): (.unauthorized, .unauthenticated, message)
            case .forbidden(let message): (.forbidden, .forbidden, message)
            }
        }
    }

    /// Loads the cluster's keys; the agent calls it once it is registered, and then periodically.
    func refreshKeys() async throws {
        lastFetch = .now
        let keys = try await fetchKeys()
        var raw: [String: Data] = [:]
        for key in keys where key.algorithm == "ed25519" {
            if let data = Data(base64Encoded: key.publicKey) { raw[key.id] = data }
        }
        verifier.withLock { $0 = GrantVerifier(keys: raw) }
        // A grant verified with a key no longer listed (retired) is trusted no more.
        verified.withLock { verified in verified = verified.filter { raw[$0.value.keyID] != nil } }
    }

    /// The grant in `authorization` (the header's value), once its signature verifies with a key of this
    /// cluster, it has not expired, and it is for this node: all that can be known before
    /// the request's body is read.
    nonisolated func verify(authorization: String?) async throws(Refusal) -> Grant {
        guard let authorization, authorization.hasPrefix("Bearer ") else {
            throw .unauthenticated("a participant call needs Authorization: Bearer <grant>")
        }
        // Blanks trimmed by hand: Foundation's trimming bridges through NSString, a few percent of an
        // agent's CPU in a fan-out (one call per participant).
        var blanked = authorization.dropFirst("Bearer ".count)
        while blanked.first == " " || blanked.first == "\t" { blanked.removeFirst() }
        while blanked.last == " " || blanked.last == "\t" { blanked.removeLast() }
        let token = String(blanked)
        let grant: Grant
        if let known = verified.withLock({ $0[token] }), Double(known.expiresAt) + 30 >= Date().timeIntervalSince1970 {
            grant = known
        } else {
            do {
                do {
                    grant = try verifier.withLock { $0 }.verify(token)
                } catch .unknownKey(let keyID) {
                    // A key made or rotated since the last fetch.
                    await refreshKeys(unlessKnown: keyID)
                    grant = try verifier.withLock { $0 }.verify(token)
                }
            } catch {
                throw .unauthenticated(error.description)
            }
            verified.withLock { verified in
                if verified.count >= Self.verifiedLimit { verified.removeAll(keepingCapacity: true) }
                verified[token] = grant
            }
        }
        if let mismatch = grant.mismatch(with: Grant.Call(cluster: cluster, taskID: grant.taskID, node: node, verb: grant.verb)) {
            throw .forbidden(mismatch)
        }
        return grant
    }

    /// Fetches the keys when `keyID` is still unknown, has the shape of a key id, and the list was not
    /// fetched in the last few seconds (a rotation reaches the servers before its first grant can reach
    /// here). Fetches happen one at a time: the actor runs one refresh at once.
    private func refreshKeys(unlessKnown keyID: String) async {
        guard SigningKeyPair.isWellFormedID(keyID), !verifier.withLock({ $0.knows(keyID: keyID) }) else { return }
        if let lastFetch, ContinuousClock.now - lastFetch < unknownKeyRefetchInterval { return }
        try? await refreshKeys()
    }

    /// A key id unknown to a list fetched this recently is refused without fetching again. Default 5 s.
    private let unknownKeyRefetchInterval: Duration

    /// The grant in `authorization`, once it also matches the call field for field.
    nonisolated func check(authorization: String?, taskID: Int64, attempt: Int? = nil, type: String? = nil, initiator: String? = nil,
               payload: RawJSON? = nil, clusterID: String? = nil) async throws(Refusal) -> Grant {
        let grant = try await verify(authorization: authorization)
        try match(grant, taskID: taskID, attempt: attempt, type: type, initiator: initiator, payload: payload, clusterID: clusterID)
        return grant
    }

    /// Whether a grant already verified allows the call, field for field.
    nonisolated func match(_ grant: Grant, taskID: Int64, attempt: Int? = nil, type: String? = nil, initiator: String? = nil,
                           payload: RawJSON? = nil, clusterID: String? = nil, verb: Grant.Verb = .run) throws(Refusal) {
        if let clusterID, clusterID != cluster { throw .forbidden("this node serves cluster \(cluster), not \(clusterID)") }
        let call = Grant.Call(cluster: cluster, taskID: taskID, attempt: attempt, type: type, initiator: initiator,
                              payloadDigest: payload.map(PayloadDigest.hex(of:)), node: node, verb: verb)
        if let mismatch = grant.mismatch(with: call) { throw .forbidden(mismatch) }
    }
}
