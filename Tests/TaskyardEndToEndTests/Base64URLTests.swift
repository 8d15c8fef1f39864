import Foundation
import Testing
@testable import TaskyardSecurity

@Suite("base64url")
struct Base64URLTests {
    @Test("decodes whatever the encoder writes, every length, and refuses what no encoder writes")
    func roundTrip() {
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255) }
            #expect(base64URLDecode(base64URL(bytes)) == Data(bytes), "length \(length)")
        }
        #expect(base64URLDecode("") == Data())
        for bad in ["A", "AAAAA", "ab+c", "ab/c", "abc=", "ab c", "é", "AB"] {
            // "AB": its last character carries bits the encoder never sets.
            #expect(base64URLDecode(bad) == nil, "\(bad)")
        }
        #expect(base64URLDecode("AA") == Data([0]))
    }
}
