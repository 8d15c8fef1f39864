@preconcurrency import Crypto
import Foundation

/// The servers' own secret: a 256-bit key, kept in a file the servers read at start and the database never
/// holds. Signing keys are stored sealed with it (AES-256-GCM), so whoever reads the database — an analyst,
/// a backup, a local user — holds ciphertext, not a key that signs.
public struct KeyFile: Sendable {
    /// The file's one line: this prefix and the key in base64url, so that a leaked one is recognisable.
    public static let prefix = "tyk_"
    private let key: SymmetricKey

    public init(key: SymmetricKey) {
        self.key = key
    }

    /// A new random key (tests, and `create`).
    public static func random() -> KeyFile { KeyFile(key: SymmetricKey(size: .bits256)) }

    public enum Failure: Error, Sendable, CustomStringConvertible {
        case unreadable(path: String, reason: String)
        case malformed(path: String)
        case readableByOthers(path: String)

        public var description: String {
            switch self {
            case .unreadable(let path, let reason):
                "the key file \(path) cannot be read (\(reason)); make one with `taskyard keys create-file \(path)`"
            case .malformed(let path):
                "the key file \(path) does not hold a key (one line: \(KeyFile.prefix) and 43 base64url characters, as `taskyard keys create-file` writes)"
            case .readableByOthers(let path):
                "the key file \(path) may be read by other users than its owner: chmod 600 it"
            }
        }
    }

    /// Reads the key at `path`: one line, `tyk_` and the key in base64url. A file that other users may read
    /// is refused: the key is worth as much as the admin token.
    public static func load(path: String) throws(Failure) -> KeyFile {
        let text: String
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            if let mode = attributes[.posixPermissions] as? NSNumber, mode.intValue & 0o077 != 0 {
                throw Failure.readableByOthers(path: path)
            }
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        let line = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard line.hasPrefix(prefix), let raw = base64URLDecode(String(line.dropFirst(prefix.count))), raw.count == 32 else {
            throw .malformed(path: path)
        }
        return KeyFile(key: SymmetricKey(data: raw))
    }

    /// Writes a new key to `path` (mode 0600; never over an existing file) and returns it.
    @discardableResult
    public static func create(path: String) throws -> KeyFile {
        let key = SymmetricKey(size: .bits256)
        let line = prefix + key.withUnsafeBytes { base64URL($0) } + "\n"
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else {
            throw Failure.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(descriptor) }
        let written = line.utf8CString.withUnsafeBufferPointer { write(descriptor, $0.baseAddress, $0.count - 1) }
        guard written == line.utf8.count else { throw Failure.unreadable(path: path, reason: String(cString: strerror(errno))) }
        return KeyFile(key: key)
    }

    /// `privateKey` sealed for storage, bound to its cluster and key id: a sealed key copied to another
    /// row does not open.
    public func seal(_ privateKey: Data, cluster: String, keyID: String) throws -> Data {
        guard let combined = try AES.GCM.seal(privateKey, using: key, authenticating: Self.context(cluster, keyID)).combined else {
            throw CryptoKitError.incorrectParameterSize
        }
        return combined
    }

    /// The private key `sealed` holds; throws when it was sealed with another key file or for another row.
    public func unseal(_ sealed: Data, cluster: String, keyID: String) throws -> Data {
        try AES.GCM.open(AES.GCM.SealedBox(combined: sealed), using: key, authenticating: Self.context(cluster, keyID))
    }

    private static func context(_ cluster: String, _ keyID: String) -> Data {
        Data("taskyard signing key \(cluster) \(keyID)".utf8)
    }

    /// A webhook's signing secret sealed for storage, bound to its subscription.
    public func seal(webhookSecret secret: WebhookSecret, cluster: String, webhookID: Int64) throws -> Data {
        guard let combined = try AES.GCM.seal(secret.raw, using: key, authenticating: Self.webhookContext(cluster, webhookID)).combined else {
            throw CryptoKitError.incorrectParameterSize
        }
        return combined
    }

    public func unseal(webhookSecret sealed: Data, cluster: String, webhookID: Int64) throws -> WebhookSecret {
        WebhookSecret(raw: try AES.GCM.open(AES.GCM.SealedBox(combined: sealed), using: key,
                                             authenticating: Self.webhookContext(cluster, webhookID)))
    }

    private static func webhookContext(_ cluster: String, _ webhookID: Int64) -> Data {
        Data("taskyard webhook secret \(cluster) \(webhookID)".utf8)
    }
}
