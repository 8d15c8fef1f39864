@preconcurrency import Crypto
import Foundation
import TaskyardDomain

/// What the server signs for each participant of a claimed attempt, so that a participant can tell a
/// fan-out the server ordered from anything else: the task, its attempt and type, the one node it is
/// for, the one thing it allows (`verb`), who initiates it, a digest of its payload, and until when.
/// Written as `<base64url(JSON claims)>.<base64url(Ed25519 signature)>`; the signature covers the first
/// part's bytes. Nodes hold only public keys: they verify, never mint.
public struct Grant: Codable, Sendable, Hashable {
    /// What a grant allows. A run grant also lets its holder ask the run's progress and cancel it.
    public enum Verb: String, Codable, Sendable, Hashable {
        case run
        /// Issued only for an attempt its initiator has said failed (`POST …/rollback-grants`).
        case rollback
    }

    /// The signing key's id, to find the public key that verifies it (keys rotate).
    public var keyID: String
    public var cluster: String
    public var taskID: Int64
    public var attempt: Int
    public var type: String
    /// The participant this grant is for: every other node refuses it.
    public var node: String
    public var verb: Verb
    public var initiator: String
    /// Hex SHA-256 of the payload's bytes as the claim carries them (`PayloadDigest`).
    public var payloadDigest: String
    /// Seconds since 1970: no participant honours it after that.
    public var expiresAt: Int64
    /// Seconds since 1970 when the server signed it: a participant that had to forget runs older than
    /// some moment (it remembers a bounded number) refuses grants issued before it.
    public var issuedAt: Int64

    enum CodingKeys: String, CodingKey {
        case keyID = "kid", cluster, taskID = "task", attempt, type, node, verb, initiator
        case payloadDigest = "payload_sha256", expiresAt = "exp", issuedAt = "iat"
    }

    public init(keyID: String, cluster: String, taskID: Int64, attempt: Int, type: String, node: String, verb: Verb,
                initiator: String, payloadDigest: String, issuedAt: Int64, expiresAt: Int64) {
        self.issuedAt = issuedAt
        self.keyID = keyID
        self.cluster = cluster
        self.taskID = taskID
        self.attempt = attempt
        self.type = type
        self.node = node
        self.verb = verb
        self.initiator = initiator
        self.payloadDigest = payloadDigest
        self.expiresAt = expiresAt
    }

    /// The claims as canonical JSON, written directly (this runs once per claimed task).
    var claimsJSON: [UInt8] {
        // The keys in their sorted order, so no sorting per grant.
        var out: [UInt8] = Array(#"{"attempt":"#.utf8)
        out.reserveCapacity(320)
        out.append(contentsOf: String(attempt).utf8)
        out.append(contentsOf: #","cluster":"#.utf8)
        CanonicalJSON.write(cluster, to: &out)
        out.append(contentsOf: #","exp":"#.utf8)
        out.append(contentsOf: String(expiresAt).utf8)
        out.append(contentsOf: #","iat":"#.utf8)
        out.append(contentsOf: String(issuedAt).utf8)
        out.append(contentsOf: #","initiator":"#.utf8)
        CanonicalJSON.write(initiator, to: &out)
        out.append(contentsOf: #","kid":"#.utf8)
        CanonicalJSON.write(keyID, to: &out)
        out.append(contentsOf: #","node":"#.utf8)
        CanonicalJSON.write(node, to: &out)
        out.append(contentsOf: #","payload_sha256":"#.utf8)
        CanonicalJSON.write(payloadDigest, to: &out)
        out.append(contentsOf: #","task":"#.utf8)
        out.append(contentsOf: String(taskID).utf8)
        out.append(contentsOf: #","type":"#.utf8)
        CanonicalJSON.write(type, to: &out)
        out.append(contentsOf: #","verb":"#.utf8)
        CanonicalJSON.write(verb.rawValue, to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// The claims of `token` as written, without checking its signature: for a grant that came with the
    /// node's own claim from the server (never for one a caller presents).
    public static func unverifiedClaims(of token: String) -> Grant? {
        guard let dot = token.firstIndex(of: "."), let claims = base64URLDecodeBytes(token[..<dot]) else { return nil }
        // Read by hand: every participant call reads one, and Foundation's decoder was a twentieth of a busy
        // agent's CPU. The claims the server writes are read here whole; anything else is no grant.
        return claims.withUnsafeBufferPointer { Grant.read(bytes: $0) }
    }

    /// What a participant call claims to be; a grant must match it field for field.
    public struct Call: Sendable, Hashable {
        public var cluster: String
        public var taskID: Int64
        /// nil for calls that name only the task (progress, cancel).
        public var attempt: Int?
        public var type: String?
        public var initiator: String?
        public var payloadDigest: String?
        /// The node asked to do the work.
        public var node: String
        /// What the call does: progress and cancel calls take the run grant.
        public var verb: Verb

        public init(cluster: String, taskID: Int64, attempt: Int? = nil, type: String? = nil, initiator: String? = nil,
                    payloadDigest: String? = nil, node: String, verb: Verb = .run) {
            self.cluster = cluster
            self.verb = verb
            self.taskID = taskID
            self.attempt = attempt
            self.type = type
            self.initiator = initiator
            self.payloadDigest = payloadDigest
            self.node = node
        }
    }

    /// Why a valid grant does not allow `call`; nil when it does. Each refusal is a 403.
    public func mismatch(with call: Call) -> String? {
        if cluster != call.cluster { return "the grant is for cluster \(cluster), not \(call.cluster)" }
        if node != call.node { return "the grant is for node \(node), not \(call.node)" }
        if verb != call.verb { return "the grant allows \(verb.rawValue), not \(call.verb.rawValue)" }
        if taskID != call.taskID { return "the grant is for task \(taskID), not \(call.taskID)" }
        if let attempt = call.attempt, attempt != self.attempt { return "the grant is for attempt \(self.attempt), not \(attempt)" }
        if let type = call.type, type != self.type { return "the grant is for task type \(self.type), not \(type)" }
        if let initiator = call.initiator, initiator != self.initiator {
            return "the grant names \(self.initiator) as the initiator, not \(initiator)"
        }
        if let digest = call.payloadDigest, digest != payloadDigest { return "the payload is not the one the grant was signed for" }
        return nil
    }
}

public enum PayloadDigest {
    /// The SHA-256 of a payload's bytes, in hex. The server signs the bytes PostgreSQL gave it and the
    /// initiator passes those very bytes on (a payload is never read and written again on its way), so the
    /// node that verifies hashes what the server hashed, without reading the payload either.
    public static func hex(of payload: RawJSON) -> String {
        hexString(SHA256.hash(data: payload.bytes))
    }

    /// The SHA-256 of a value's canonical JSON (`CanonicalJSON`: keys sorted, no whitespace), in hex: the
    /// same JSON value gives the same digest however it was written.
    public static func hex(of value: JSONValue) -> String {
        hexString(SHA256.hash(data: CanonicalJSON.bytes(value)))
    }
}

/// Why a grant cannot be trusted at all: 401 for the participant endpoint.
public enum GrantError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed
    case unknownKey(String)
    case badSignature
    case expired

    public var description: String {
        switch self {
        case .malformed: "the grant cannot be read"
        case .unknownKey(let id): "the grant is signed with key \(id), which this node does not know"
        case .badSignature: "the grant's signature does not verify"
        case .expired: "the grant has expired"
        }
    }
}

/// Signs grants with one Ed25519 private key (the server's side).
public struct GrantSigner: Sendable {
    public let keyID: String
    private let privateKey: Curve25519.Signing.PrivateKey

    public init(keyID: String, privateKeyRaw: Data) throws {
        self.keyID = keyID
        privateKey = try Curve25519.Signing.PrivateKey(rawRepresentation: privateKeyRaw)
    }

    public func sign(_ grant: Grant) throws -> String {
        var grant = grant
        grant.keyID = keyID
        let claims = base64URL(grant.claimsJSON)
        let signature = try privateKey.signature(for: Array(claims.utf8))
        return claims + "." + base64URL(signature)
    }
}

/// Verifies grants with the public keys of one cluster (the node's side).
public struct GrantVerifier: Sendable {
    private let keys: [String: Curve25519.Signing.PublicKey]

    /// `keys`: key id → raw 32-byte public key.
    public init(keys: [String: Data]) {
        var parsed: [String: Curve25519.Signing.PublicKey] = [:]
        for (id, raw) in keys {
            if let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) { parsed[id] = key }
        }
        self.keys = parsed
    }

    public func knows(keyID: String) -> Bool { keys[keyID] != nil }

    /// The grant's claims, once its signature verifies and it has not expired (`leeway` covers clock
    /// differences between the server and the node).
    public func verify(_ token: String, now: Date = Date(), leeway: TimeInterval = 30) throws(GrantError) -> Grant {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let grant = Grant.unverifiedClaims(of: token), let signature = base64URLDecode(parts[1])
        else { throw .malformed }
        guard let key = keys[grant.keyID] else { throw .unknownKey(grant.keyID) }
        guard key.isValidSignature(signature, for: Data(parts[0].utf8)) else { throw .badSignature }
        guard Double(grant.expiresAt) + leeway >= now.timeIntervalSince1970 else { throw .expired }
        return grant
    }
}

/// A new Ed25519 key pair, with an id derived from its public key.
public struct SigningKeyPair: Sendable {
    public let id: String
    public let publicKeyRaw: Data
    public let privateKeyRaw: Data

    /// Whether `id` has the shape every key id has (`ed25519-` and 16 hex digits).
    public static func isWellFormedID(_ id: String) -> Bool {
        id.utf8.count == 24 && id.hasPrefix("ed25519-")
            && id.utf8.dropFirst(8).allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }

    public static func generate() -> SigningKeyPair {
        let key = Curve25519.Signing.PrivateKey()
        let publicRaw = key.publicKey.rawRepresentation
        return SigningKeyPair(id: "ed25519-" + String(hexString(SHA256.hash(data: publicRaw)).prefix(16)),
                              publicKeyRaw: publicRaw, privateKeyRaw: key.rawRepresentation)
    }
}

func hexString<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
}

public enum Hex {
    public static func encode(_ data: Data) -> String { hexString(data) }

    public static func decode(_ text: String) -> Data? {
        let bytes = Array(text.utf8)
        guard bytes.count % 2 == 0 else { return nil }
        var out = Data(capacity: bytes.count / 2)
        var index = 0
        while index < bytes.count {
            guard let high = nibble(bytes[index]), let low = nibble(bytes[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 48...57: byte - 48
        case 97...102: byte - 87
        case 65...70: byte - 55
        default: nil
        }
    }
}

func base64URLDecode(_ text: Substring) -> Data? {
    base64URLDecodeBytes(text).map { Data($0) }
}

func base64URLDecode(_ text: String) -> Data? {
    base64URLDecode(text[...])
}

/// The bytes of unpadded base64url text, or nil for text that is not. By hand, into an array sized up front:
/// Foundation's string replacing and padding took a tenth of an agent's CPU under load, and appending byte
/// by byte to `Data` most of a twentieth more (every participant call, and every claimed task, reads a grant).
func base64URLDecodeBytes(_ text: Substring) -> [UInt8]? {
    var out: [UInt8] = []
    out.reserveCapacity(text.utf8.count * 3 / 4)
    var accumulator: UInt32 = 0
    var bits = 0
    for byte in text.utf8 {
        let value: UInt32
        switch byte {
        case 65...90: value = UInt32(byte - 65)
        case 97...122: value = UInt32(byte - 97 + 26)
        case 48...57: value = UInt32(byte - 48 + 52)
        case 45: value = 62
        case 95: value = 63
        default: return nil
        }
        accumulator = (accumulator << 6) | value
        bits += 6
        if bits >= 8 {
            bits -= 8
            out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
        }
    }
    // A length of 1 mod 4 cannot come from base64; leftover bits must be zero, as the encoder writes them.
    guard bits < 6, accumulator & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
    return out
}

extension Grant: JSONReadable {
    public static func read(_ json: JSONNode) throws(JSONUnreadable) -> Grant {
        typealias F = JSONFields
        let fields = try JSONFields(json)
        return Grant(keyID: try fields.required("kid", F.string), cluster: try fields.required("cluster", F.string),
                     taskID: try fields.required("task", F.int64), attempt: try fields.required("attempt", F.int),
                     type: try fields.required("type", F.string), node: try fields.required("node", F.string),
                     verb: try fields.required("verb", F.enumeration), initiator: try fields.required("initiator", F.string),
                     payloadDigest: try fields.required("payload_sha256", F.string),
                     issuedAt: try fields.required("iat", F.int64), expiresAt: try fields.required("exp", F.int64))
    }
}
