/// The `code` of an error body: snake_case and stable, because programs match on it. Every code the server
/// or an agent answers with is one of the constants here (the documentation's table is held to them); a
/// client reads any string, so that a code a newer server adds is still an error it can show.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    private init(_ rawValue: String) { self.rawValue = rawValue }

    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public var description: String { rawValue }

    // Requests that cannot be read (400, 413, 415, 422).
    public static let badRequest = ErrorCode("bad_request")
    public static let malformedJSON = ErrorCode("malformed_json")
    public static let bodyTooLarge = ErrorCode("body_too_large")
    public static let unsupportedMediaType = ErrorCode("unsupported_media_type")
    public static let missingField = ErrorCode("missing_field")
    public static let invalidType = ErrorCode("invalid_type")
    public static let invalidField = ErrorCode("invalid_field")
    public static let tooLarge = ErrorCode("too_large")
    public static let tooDeep = ErrorCode("too_deep")
    public static let invalidParent = ErrorCode("invalid_parent")
    public static let unknownNode = ErrorCode("unknown_node")
    public static let idempotencyKeyReused = ErrorCode("idempotency_key_reused")
    public static let invalidValue = ErrorCode("invalid_value")
    public static let constraintViolation = ErrorCode("constraint_violation")

    // Credentials (401, 403).
    public static let unauthenticated = ErrorCode("unauthenticated")
    public static let forbidden = ErrorCode("forbidden")

    // Nothing there (404, 405).
    public static let notFound = ErrorCode("not_found")
    public static let methodNotAllowed = ErrorCode("method_not_allowed")
    public static let clusterNotFound = ErrorCode("cluster_not_found")
    public static let nodeNotFound = ErrorCode("node_not_found")
    public static let taskNotFound = ErrorCode("task_not_found")
    public static let tokenNotFound = ErrorCode("token_not_found")
    public static let signingKeyNotFound = ErrorCode("signing_key_not_found")
    public static let scheduleNotFound = ErrorCode("schedule_not_found")
    public static let webhookNotFound = ErrorCode("webhook_not_found")
    public static let deliveryNotFound = ErrorCode("delivery_not_found")

    // A task or cluster not in a state for it (409).
    public static let clusterExists = ErrorCode("cluster_exists")
    public static let scheduleExists = ErrorCode("schedule_exists")
    public static let submissionChanged = ErrorCode("submission_changed")
    public static let staleAttempt = ErrorCode("stale_attempt")
    public static let staleLease = ErrorCode("stale_lease")
    public static let wrongNode = ErrorCode("wrong_node")
    public static let notReceived = ErrorCode("not_received")
    public static let alreadyFinished = ErrorCode("already_finished")
    public static let rollingBack = ErrorCode("rolling_back")
    public static let reportRefused = ErrorCode("report_refused")
    public static let notAbortable = ErrorCode("not_abortable")
    public static let notRetryable = ErrorCode("not_retryable")
    public static let notFinished = ErrorCode("not_finished")

    // Load and trouble (429, 500, 503).
    public static let tooManyRequests = ErrorCode("too_many_requests")
    public static let tooManyStreams = ErrorCode("too_many_streams")
    public static let serverBusy = ErrorCode("server_busy")
    public static let databaseBusy = ErrorCode("database_busy")
    public static let databaseUnavailable = ErrorCode("database_unavailable")
    public static let notMigrated = ErrorCode("not_migrated")
    public static let internalError = ErrorCode("internal")

    // The participant endpoint of an agent.
    public static let unknownTaskType = ErrorCode("unknown_task_type")
    public static let noRollback = ErrorCode("no_rollback")
    public static let noProgress = ErrorCode("no_progress")
    public static let handlerFailed = ErrorCode("handler_failed")
    public static let timedOut = ErrorCode("timed_out")
    public static let cancelled = ErrorCode("cancelled")
    public static let alreadyRan = ErrorCode("already_ran")
    public static let duplicateCall = ErrorCode("duplicate_call")
    public static let serverUnavailable = ErrorCode("server_unavailable")

    /// Every code above, for the documentation's table and its test.
    public static let all: [ErrorCode] = [
        .badRequest, .malformedJSON, .bodyTooLarge, .unsupportedMediaType, .missingField, .invalidType, .invalidField,
        .tooLarge, .tooDeep, .invalidParent, .unknownNode, .idempotencyKeyReused, .invalidValue, .constraintViolation,
        .unauthenticated, .forbidden,
        .notFound, .methodNotAllowed, .clusterNotFound, .nodeNotFound, .taskNotFound, .tokenNotFound, .signingKeyNotFound,
        .scheduleNotFound, .webhookNotFound, .deliveryNotFound, .clusterExists, .scheduleExists, .submissionChanged, .staleAttempt, .staleLease, .wrongNode, .notReceived, .alreadyFinished,
        .rollingBack, .reportRefused, .notAbortable, .notRetryable, .notFinished,
        .tooManyRequests, .tooManyStreams, .serverBusy, .databaseBusy, .databaseUnavailable, .notMigrated, .internalError,
        .unknownTaskType, .noRollback, .noProgress, .handlerFailed, .timedOut, .cancelled, .alreadyRan, .duplicateCall,
        .serverUnavailable,
    ]
}
