import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TaskyardAPI

extension Request {
    /// The body as `T`: 415 unless it is JSON, 413 over `limit` bytes, 400 when malformed, 422 when the
    /// JSON breaks the shape (naming the field). Unknown fields are ignored.
    mutating func decodeJSON<T: Decodable>(_ type: T.Type, limit: Int) async throws -> T {
        let contentType = headers[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard contentType == "application/json" || contentType?.hasSuffix("+json") == true else {
            throw APIError(.unsupportedMediaType, code: "unsupported_media_type",
                           message: "send the body as JSON with Content-Type: application/json")
        }
        let buffer = try await collectBody(upTo: limit)
        return try APIJSON.decode(T.self, from: Data(buffer.readableBytesView))
    }
}

/// A JSON response with a status.
func jsonResponse<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
    let data = try APIJSON.encode(value)
    return Response(status: status, headers: [.contentType: "application/json"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}
