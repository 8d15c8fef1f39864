@preconcurrency import Crypto
import Foundation

/// A webhook subscription's signing secret, and the signatures the Standard Webhooks specification defines
/// (https://www.standardwebhooks.com): `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`,
/// so that a receiver checks a delivery with that specification's own libraries.
public struct WebhookSecret: Sendable, Hashable {
    /// The specification's prefix of a secret's text form.
    public static let prefix = "whsec_"
    /// 32 random bytes (the specification asks for 24 to 64).
    public let raw: Data

    public init(raw: Data) {
        self.raw = raw
    }

    public static func random() -> WebhookSecret {
        WebhookSecret(raw: SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) })
    }

    /// `whsec_` and the secret in standard base64: what the subscriber is given once, and what the
    /// specification's libraries take.
    public var text: String { Self.prefix + raw.base64EncodedString() }

    /// The `webhook-signature` header of a message: `v1,` and the base64 HMAC-SHA256 of
    /// `<webhook-id>.<webhook-timestamp>.<body>`.
    public func signature(messageID: String, timestamp: Int64, body: Data) -> String {
        var signed = Data("\(messageID).\(timestamp).".utf8)
        signed.append(body)
        let code = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: raw))
        return "v1," + Data(code).base64EncodedString()
    }
}
