import Crypto
import Foundation

/// A bearer token's secret: 256 random bits, shown once; the database keeps only its SHA-256 digest
/// (a high-entropy secret needs no slow hash: there is nothing to guess).
public enum TokenSecret {
    /// Prefix so a leaked secret is recognisable in logs and by secret scanners.
    public static let prefix = "tyd_"

    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return prefix + base64URL(bytes)
    }

    /// The digest stored and looked up: hex of SHA-256 over the secret's UTF-8 bytes.
    public static func hash(_ secret: String) -> String {
        hexString(SHA256.hash(data: Data(secret.utf8)))
    }
}

func base64URL<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
    Data(bytes).base64EncodedString()
        .replacingOccurrences(of: "+", with: "-")
        .replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}
