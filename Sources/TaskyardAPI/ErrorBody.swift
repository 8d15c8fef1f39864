import TaskyardDomain

/// `{"error": {"code": …, "message": …, "field": …}}`: every error the API returns.
public struct ErrorBody: Codable, Sendable, Equatable {
    public struct Detail: Codable, Sendable, Equatable {
        public var code: ErrorCode
        public var message: String
        public var field: String?

        public init(code: ErrorCode, message: String, field: String? = nil) {
            self.code = code
            self.message = message
            self.field = field
        }
    }

    public var error: Detail

    public init(code: ErrorCode, message: String, field: String? = nil) {
        error = Detail(code: code, message: message, field: field)
    }
}
