import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TaskyardAPI

extension Request {
    /// The body as `T`: 415 unless it is JSON, 413 over `limit` bytes, 400 when malformed, 422 when the
    /// JSON breaks the shape (naming the field) or nests deeper than `maximumDepth`. Unknown fields are
    /// ignored.
    mutating func decodeJSON<T: Decodable>(_ type: T.Type, limit: Int, maximumDepth: Int) async throws -> T {
        let contentType = headers[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard contentType == "application/json" || contentType?.hasSuffix("+json") == true else {
            throw APIError(.unsupportedMediaType, code: .unsupportedMediaType,
                           message: "send the body as JSON with Content-Type: application/json")
        }
        let buffer = try await collectBody(upTo: limit)
        if let path = buffer.withUnsafeReadableBytes({ JSONNesting.firstTooDeep(in: $0, maximumDepth: maximumDepth) }) {
            let field = path.count > 200 ? String(path.prefix(200)) + "…" : path
            throw APIError(.unprocessableContent, code: .tooDeep,
                           message: "\(field) nests deeper than the server reads (\(maximumDepth) levels in a body)", field: field)
        }
        let data = Data(buffer.readableBytesView)
        do {
            return try APIJSON.decode(T.self, from: data)
        } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty {
            // JSON has one kind of number: 3.0 is the integer 3 (as JSON Schema says), but Foundation's
            // decoder will not read it into an integer field. Read such numbers as integers and try again.
            if let integral = JSONNesting.integralNumbersWithoutFraction(data),
               let value = try? APIJSON.decode(T.self, from: integral) {
                return value
            }
            if let field = JSONNesting.firstNonIntegerNumber(in: data) {
                throw APIError(.unprocessableContent, code: .invalidType,
                               message: "\(field) must be a whole number in range", field: field)
            }
            throw APIError(.badRequest, code: .malformedJSON, message: "the body is not valid JSON")
        }
    }
}

/// A JSON response with a status.
func jsonResponse<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
    let data = try APIJSON.encode(value)
    return Response(status: status, headers: [.contentType: "application/json"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}
