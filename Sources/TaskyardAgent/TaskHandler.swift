import Foundation
import TaskyardDomain

/// The work one participant does for a task, as its handler sees it. The same task id and attempt may
/// arrive more than once (a retried call, a re-run after a lost lease): handlers use them to stay idempotent,
/// for example by keying what they create on `taskID`, or by recording the attempt they completed.
public struct ParticipantWork: Sendable {
    public let type: String
    public let taskID: Int64
    public let clusterID: String
    public let attempt: Int
    /// The node whose agent runs the fan-out.
    public let initiator: String
    /// This node.
    public let node: String
    /// The payload as the bytes it came in (an executable handler gets them on stdin as they are).
    public let rawPayload: RawJSON
    /// The payload, read from its bytes.
    public var payload: JSONValue { rawPayload.value }
    /// The task's W3C trace context, when it was submitted with one.
    public var traceparent: String?
    let progressSink: @Sendable (Double, Double) -> Void

    /// Tells how far the work is: the task's initiator folds it into the task's progress.
    public func progress(completed: Double, total: Double) {
        guard total > 0, completed >= 0 else { return }
        progressSink(min(completed, total), total)
    }
}

/// What a participant does for one task type: return a result (or nil), or throw to fail.
public protocol TaskHandler: Sendable {
    func run(_ work: ParticipantWork) async throws -> JSONValue?
    /// The result as bytes: a handler whose result comes as JSON text (an executable's stdout) gives it
    /// as it came, checked but not read; the default writes `run`'s value.
    func runKeepingBytes(_ work: ParticipantWork) async throws -> RawJSON?
}

extension TaskHandler {
    public func runKeepingBytes(_ work: ParticipantWork) async throws -> RawJSON? {
        try await run(work).map(RawJSON.init)
    }
}

/// A failure a handler reports, with the HTTP status the participant endpoint answers (default 500;
/// 422 for a payload the handler cannot use).
public struct HandlerFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var status: Int

    public init(_ message: String, status: Int = 500) {
        self.message = message
        self.status = status
    }

    public var description: String { message }
}

/// A handler from a closure, for programs that embed the agent.
public struct ClosureHandler: TaskHandler {
    private let body: @Sendable (ParticipantWork) async throws -> JSONValue?
    public init(_ body: @escaping @Sendable (ParticipantWork) async throws -> JSONValue?) { self.body = body }
    public func run(_ work: ParticipantWork) async throws -> JSONValue? { try await body(work) }
}

/// The built-in `echo`: the payload back as the result, the very bytes that came.
struct EchoHandler: TaskHandler {
    func run(_ work: ParticipantWork) async throws -> JSONValue? { work.payload }
    func runKeepingBytes(_ work: ParticipantWork) async throws -> RawJSON? { work.rawPayload }
}

/// The handlers an agent serves: registered Swift handlers first, then an executable `DIR/<type>` when a
/// handlers folder is set. An unknown type gets 404 from the participant endpoint.
public struct HandlerRegistry: Sendable {
    private var handlers: [String: any TaskHandler] = [:]
    private var rollbacks: [String: any TaskHandler] = [:]
    public var directory: URL?
    /// Names of the agent's environment variables that executable handlers get too (`--handler-env`).
    public var passedEnvironment: [String] = []
    /// The user executable handlers run as (`--handler-user`); nil: the agent's own.
    public var handlerUser: HandlerUser?

    public init(directory: URL? = nil) { self.directory = directory }

    /// The built-in test types: `noop`, `echo` (returns the payload), `sleep` (`{"seconds": x}`),
    /// `fail` (`{"message": …}`).
    public static func builtins(directory: URL? = nil) -> HandlerRegistry {
        var registry = HandlerRegistry(directory: directory)
        registry.register("noop", ClosureHandler { _ in nil })
        registry.register("echo", EchoHandler())
        registry.register("sleep", ClosureHandler { work in
            let seconds: Double
            switch work.payload["seconds"] {
            case .integer(let value)?: seconds = Double(value)
            case .double(let value)?: seconds = value
            case nil: seconds = 1
            default: throw HandlerFailure("payload.seconds must be a number", status: 422)
            }
            guard seconds >= 0, seconds <= 86_400 else { throw HandlerFailure("payload.seconds must be 0–86400", status: 422) }
            try await Task.sleep(for: .seconds(seconds))
            return ["slept": .double(seconds)]
        })
        registry.register("fail", ClosureHandler { work in
            if case .string(let message)? = work.payload["message"] { throw HandlerFailure(message) }
            throw HandlerFailure("failed as asked (the fail handler)")
        })
        return registry
    }

    public mutating func register(_ type: String, _ handler: any TaskHandler) {
        handlers[type] = handler
    }

    /// Declares how to undo `type` on a participant where it succeeded, when the task failed elsewhere.
    public mutating func registerRollback(_ type: String, _ handler: any TaskHandler) {
        rollbacks[type] = handler
    }

    /// Only a task type (a name without dots) reaches a handler: helper scripts, `x.rollback` and dotfiles
    /// in the folder are never run as types.
    public func handler(for type: String) -> (any TaskHandler)? {
        guard Identifier.isValidTaskType(type) else { return nil }
        return handlers[type] ?? executable(named: type)
    }

    /// The rollback of `type`: a registered one, else the executable `DIR/<type>.rollback`.
    public func rollbackHandler(for type: String) -> (any TaskHandler)? {
        guard Identifier.isValidTaskType(type) else { return nil }
        return rollbacks[type] ?? executable(named: type + ".rollback")
    }

    private func executable(named name: String) -> (any TaskHandler)? {
        guard let directory, Identifier.isValid(name) else { return nil }
        let executable = directory.appending(path: name)
        // A regular file (a link to one counts), executable: a folder or a device is no handler.
        var status = stat()
        guard stat(executable.path, &status) == 0, status.st_mode & S_IFMT == S_IFREG,
              FileManager.default.isExecutableFile(atPath: executable.path) else { return nil }
        return ExecutableHandler(executable: executable, passedEnvironment: passedEnvironment, user: handlerUser)
    }
}
