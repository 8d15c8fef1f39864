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

    /// Whether `secret` has the shape every issued secret has (`tyd_` and 43 base64url characters): one
    /// that does not is refused without a lookup, and without a place in the token cache.
    public static func isWellFormed(_ secret: String) -> Bool {
        guard secret.hasPrefix(prefix), secret.utf8.count == prefix.utf8.count + 43 else { return false }
        return secret.utf8.dropFirst(prefix.utf8.count).allSatisfy { byte in
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
        }
    }

    /// The digest stored and looked up: hex of SHA-256 over the secret's UTF-8 bytes.
    public static func hash(_ secret: String) -> String {
        hexString(SHA256.hash(data: Data(secret.utf8)))
    }
}

/// Base64url without padding, written byte by byte (Foundation's string replacing showed in profiles of
/// the claim path, where a grant is encoded per claimed task).
func base64URL<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    let input = Array(bytes)
    var out: [UInt8] = []
    out.reserveCapacity((input.count * 4 + 2) / 3)
    var index = 0
    while index + 2 < input.count {
        let chunk = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
        out.append(alphabet[Int(chunk >> 18 & 63)])
        out.append(alphabet[Int(chunk >> 12 & 63)])
        out.append(alphabet[Int(chunk >> 6 & 63)])
        out.append(alphabet[Int(chunk & 63)])
        index += 3
    }
    let rest = input.count - index
    if rest > 0 {
        let chunk = UInt32(input[index]) << 16 | (rest == 2 ? UInt32(input[index + 1]) << 8 : 0)
        out.append(alphabet[Int(chunk >> 18 & 63)])
        out.append(alphabet[Int(chunk >> 12 & 63)])
        if rest == 2 { out.append(alphabet[Int(chunk >> 6 & 63)]) }
    }
    return String(decoding: out, as: UTF8.self)
}
