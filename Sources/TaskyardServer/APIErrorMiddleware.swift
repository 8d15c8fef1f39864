import HTTPTypes
import Hummingbird
import NIOCore
import Logging
import TaskyardAPI

/// Turns every error into the contract's JSON error, answers 405 (with `Allow`) for a known path asked with
/// the wrong method, and echoes `X-Opaque-Id` on every response.
struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteTable

    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            var apiError = APIError.from(error)
            if apiError.status == .notFound, (error as? HTTPError)?.status == .notFound {
                let allowed = routes.methods(forPath: request.uri.path)
                if allowed.isEmpty {
                    apiError = APIError(.notFound, code: .notFound, message: "no route \(request.method) \(request.uri.path)")
                } else {
                    apiError = APIError(.methodNotAllowed, code: .methodNotAllowed,
                                        message: "\(request.uri.path) takes \(allowed.map(\.rawValue).joined(separator: ", "))")
                    apiError.headers[.allow] = allowed.map(\.rawValue).joined(separator: ", ")
                }
            }
            if apiError.status == .internalServerError {
                context.logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            }
            response = try apiError.response(from: request, context: context)
        }
        if let opaqueID = request.headers[.opaqueID] { response.headers[.opaqueID] = opaqueID }
        return response
    }
}

extension HTTPField.Name {
    static let opaqueID = HTTPField.Name("X-Opaque-Id")!
    /// W3C trace context, stored with a submitted task and passed on to its participants.
    static let traceparent = HTTPField.Name("traceparent")!
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
}

/// Every route the server answers: registered from here, and used to tell 404 from 405.
struct RouteTable: Sendable {
    private(set) var entries: [(method: HTTPRequest.Method, pattern: [String])] = []

    mutating func add(_ method: HTTPRequest.Method, _ path: String) {
        entries.append((method, path.split(separator: "/").map(String.init)))
    }

    /// The methods of the most specific patterns matching `path`: `…/tasks/batch` is the batch route's
    /// (POST), not the task route's with a task named "batch".
    func methods(forPath path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/").map(String.init)
        let matching = entries.filter { entry in
            entry.pattern.count == segments.count
                && zip(entry.pattern, segments).allSatisfy { $0.hasPrefix(":") || $0 == $1 }
        }
        func parameters(_ pattern: [String]) -> Int { pattern.filter { $0.hasPrefix(":") }.count }
        guard let fewest = matching.map({ parameters($0.pattern) }).min() else { return [] }
        return matching.filter { parameters($0.pattern) == fewest }.map(\.method)
    }
}
