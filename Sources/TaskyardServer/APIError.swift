import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Postgres
import TaskyardAPI
import TaskyardDomain

/// An error in the contract's shape: `{"error": {"code", "message", "field"}}` with a fitting status.
/// Routes throw anything; `APIErrorMiddleware` turns it into one of these, in one place.
struct APIError: HTTPResponseError {
    let status: HTTPResponse.Status
    var body: ErrorBody
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, code: ErrorCode, message: String, field: String? = nil) {
        self.status = status
        body = ErrorBody(code: code, message: message, field: field)
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        let data = (try? APIJSON.encode(body)) ?? Data(#"{"error":{"code":"internal","message":"error"}}"#.utf8)
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// 401: no usable credentials. Says how to authenticate, as RFC 6750 asks.
    static func unauthenticated(_ message: String) -> APIError {
        var error = APIError(.unauthorized, code: .unauthenticated, message: message)
        error.headers[.wwwAuthenticate] = #"Bearer realm="taskyard""#
        return error
    }

    /// 403: the token is valid but may not do this.
    static func forbidden(_ message: String) -> APIError {
        APIError(.forbidden, code: .forbidden, message: message)
    }

    static func badRequest(_ message: String, field: String? = nil) -> APIError {
        APIError(.badRequest, code: .badRequest, message: message, field: field)
    }

    /// Whatever a route threw, as the API reports it.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as TaskyardError:
            let status: HTTPResponse.Status = switch error.kind {
            case .invalid: .unprocessableContent
            case .notFound: .notFound
            case .conflict: .conflict
            }
            return APIError(status, code: error.code, message: error.message, field: error.field)
        case let error as DecodingError:
            return from(decoding: error)
        case is NIOTooManyBytesError:
            return APIError(.contentTooLarge, code: .bodyTooLarge, message: "the request body is larger than the server accepts")
        case let error as PostgresError:
            return from(database: error)
        case let error as HTTPError:
            return APIError(error.status, code: ErrorCode(rawValue: error.status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_")),
                            message: error.body ?? error.status.reasonPhrase)
        default:
            return APIError(.internalServerError, code: .internalError, message: "the server failed to handle the request")
        }
    }

    /// Database failures by class: a value the database refuses is the request's fault (422); a database
    /// that is busy, locked, read-only or gone is a moment's trouble (503 with `Retry-After`). What is left
    /// is a bug (500).
    static func from(database error: PostgresError) -> APIError {
        var unavailable = APIError(.serviceUnavailable, code: .databaseUnavailable,
                                   message: "the database cannot serve this right now; retry shortly")
        unavailable.headers[.retryAfter] = "1"
        if [.connection, .poolTimeout, .closed].contains(error.kind) { return unavailable }
        switch error.sqlClass {
        case .invalidValue:
            // PostgreSQL's message names the value's problem, not the schema; the statement stays out.
            return APIError(.unprocessableContent, code: .invalidValue,
                            message: "a value cannot be stored: \(error.message.prefix(200))")
        case .constraint:
            return APIError(.unprocessableContent, code: .constraintViolation,
                            message: "the request breaks a rule of the stored data: \(error.message.prefix(200))")
        case .transient:
            unavailable.body = ErrorBody(code: .databaseBusy, message: "the database is busy (\(error.sqlState ?? "")); retry shortly")
            return unavailable
        case .other:
            return APIError(.internalServerError, code: .internalError, message: "the server failed to handle the request")
        }
    }

    /// Malformed JSON is 400; JSON of the wrong shape (missing field, wrong type, bad value) is 422 naming it.
    static func from(decoding error: DecodingError) -> APIError {
        switch error {
        case .typeMismatch(let type, let context):
            let field = jsonPath(context.codingPath)
            return APIError(.unprocessableContent, code: .invalidType,
                            message: "\(field.isEmpty ? "the body" : field) must be \(describe(type))", field: field.isEmpty ? nil : field)
        case .valueNotFound(let type, let context):
            let field = jsonPath(context.codingPath)
            return APIError(.unprocessableContent, code: .missingField,
                            message: "\(field) must be \(describe(type)), not null", field: field)
        case .keyNotFound(let key, let context):
            let field = jsonPath(context.codingPath + [key])
            return APIError(.unprocessableContent, code: .missingField, message: "\(field) is required", field: field)
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return APIError(.badRequest, code: .malformedJSON, message: "the body is not valid JSON")
            }
            let field = jsonPath(context.codingPath)
            return APIError(.unprocessableContent, code: .invalidField,
                            message: "\(field): \(context.debugDescription)", field: field)
        @unknown default:
            return APIError(.badRequest, code: .malformedJSON, message: "the body cannot be read")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type, is Int32.Type: "an integer"
        case is Double.Type: "a number"
        case is Bool.Type: "true or false"
        case is [Any].Type: "an array"
        case is [String: Any].Type: "an object"
        default: "a \(type)".lowercased()
        }
    }
}
