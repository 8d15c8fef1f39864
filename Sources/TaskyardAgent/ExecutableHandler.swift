import Foundation
import Logging
import TaskyardAPI
import TaskyardDomain

/// Runs `DIR/<type>` for a task: the payload JSON on stdin; `TASKYARD_TASK_ID`, `TASKYARD_ATTEMPT`,
/// `TASKYARD_CLUSTER`, `TASKYARD_NODE` in its environment. Exit 0 with JSON (or nothing) on stdout is
/// success; any other exit, or output that is not JSON, is a failure carrying the tail of stderr.
///
/// A handler gets the least it needs: a minimal environment (`PATH`, `HOME`, `LANG`, the `TASKYARD_*`
/// variables, and the variables the operator passes on purpose with `--handler-env`), never the agent's
/// own (its token among them); its files live in a folder only the agent's user can open, removed after.
/// With a `user` (`--handler-user`), it runs as that user (through `setpriv`, which the agent, started as
/// root, may use), so that it cannot read what only the agent's user may: its token file among them.
struct ExecutableHandler: TaskHandler {
    static let logger = Logger(label: "taskyard.agent.handler")
    let executable: URL
    /// Names of the agent's environment variables handlers also get.
    var passedEnvironment: [String] = []
    /// The user it runs as; nil: the agent's.
    var user: HandlerUser?
    /// After SIGTERM on cancellation, how long the process has before SIGKILL.
    var terminationGrace: Duration = .seconds(5)

    /// The environment a handler runs with, before the task's own variables.
    static func baseEnvironment(passing names: [String], from agent: [String: String] = ProcessInfo.processInfo.environment) -> [String: String] {
        var environment = ["PATH": agent["PATH"] ?? "/usr/local/bin:/usr/bin:/bin", "LANG": agent["LANG"] ?? "C.UTF-8"]
        if let home = agent["HOME"] { environment["HOME"] = home }
        for name in names { environment[name] = agent[name] }
        return environment
    }

    func run(_ work: ParticipantWork) async throws -> JSONValue? { try await runKeepingBytes(work)?.value }

    func runKeepingBytes(_ work: ParticipantWork) async throws -> RawJSON? {
        let folder = FileManager.default.temporaryDirectory.appending(path: "taskyard-handler-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: folder) }
        // The handler's own folder (its working directory, and its home): only its user may open it.
        if let user, chown(folder.path, user.uid, user.gid) != 0 {
            Self.logger.error("cannot hand a handler's folder to its user", metadata: ["type": "\(work.type)", "user": "\(user.name)"])
            throw HandlerFailure("the node cannot prepare the handler of type \(work.type) (its agent's log says why)")
        }
        // Files, not pipes: no deadlock however much the handler writes, and nothing to drain.
        let input = folder.appending(path: "stdin.json")
        let output = folder.appending(path: "stdout")
        let errors = folder.appending(path: "stderr")
        for (file, contents) in [(input, Data(work.rawPayload.bytes)), (output, Data()), (errors, Data())] {
            guard FileManager.default.createFile(atPath: file.path, contents: contents, attributes: [.posixPermissions: 0o600]) else {
                Self.logger.error("cannot write a handler's files", metadata: ["type": "\(work.type)", "folder": "\(folder.path)"])
                throw HandlerFailure("the node cannot prepare the handler of type \(work.type) (its agent's log says why)")
            }
        }

        var environment = Self.baseEnvironment(passing: passedEnvironment)
        environment["TASKYARD_TASK_ID"] = String(work.taskID)
        environment["TASKYARD_ATTEMPT"] = String(work.attempt)
        environment["TASKYARD_CLUSTER"] = work.clusterID
        environment["TASKYARD_NODE"] = work.node
        environment["TASKYARD_TASK_TYPE"] = work.type
        if let traceparent = work.traceparent { environment["TRACEPARENT"] = traceparent }
        if user != nil { environment["HOME"] = folder.path }

        var (process, status) = (Process(), Int32(0))
        for attempt in 1...20 {
            process = Process()
            if let user {
                // setpriv sets the ids and then execs the handler: the same process, the same group to signal.
                process.executableURL = HandlerUser.setpriv
                process.arguments = ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--clear-groups", "--", executable.path]
            } else {
                process.executableURL = executable
            }
            process.currentDirectoryURL = folder
            process.environment = environment
            process.standardInput = try FileHandle(forReadingFrom: input)
            process.standardOutput = try FileHandle(forWritingTo: output)
            process.standardError = try FileHandle(forWritingTo: errors)
            do {
                // The handler's progress is followed by a child that ends with its run.
                status = try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { await Self.followProgress(in: errors, for: work) }
                    defer { group.cancelAll() }
                    return try await run(process)
                }
                break
            } catch let error as NSError where error.code == Int(ETXTBSY) && attempt < 20 {
                // "Text file busy": the handler is being written (a deployment in progress, or a process
                // forked meanwhile still holds it open for writing). It clears quickly.
                try await Task.sleep(for: .milliseconds(50))
            } catch let error as NSError {
                // Where the handler lives is the node's business: the path goes to the agent's log only.
                Self.logger.error("cannot start a handler", metadata: ["type": "\(work.type)", "path": "\(executable.path)",
                                                                       "error": "\(error.localizedDescription) (\(error.code))"])
                throw HandlerFailure("cannot start the handler of type \(work.type) (error \(error.code); its agent's log says more)")
            }
        }
        try Task.checkCancellation()

        let stdout = (try? Data(contentsOf: output)) ?? Data()
        guard status == 0 else {
            let stderr = String(decoding: (try? Data(contentsOf: errors)) ?? Data(), as: UTF8.self)
            let tail = stderr.split(separator: "\n").filter { !$0.hasPrefix("progress ") }.suffix(5).joined(separator: "\n")
            let reason = process.terminationReason == .uncaughtSignal ? "was killed by signal \(status)" : "exited with status \(status)"
            throw HandlerFailure("handler \(work.type) \(reason)\(tail.isEmpty ? "" : ": \(tail)")")
        }
        if String(decoding: stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return nil }
        guard let result = stdout.withUnsafeBytes({ RawJSON(validating: $0.bindMemory(to: UInt8.self)) }) else {
            let text = String(decoding: stdout.prefix(200), as: UTF8.self)
            throw HandlerFailure("handler \(work.type) printed output that is not JSON: \(text)")
        }
        return result
    }

    /// Runs the process to its end; on cancellation SIGTERM, then SIGKILL after the grace period, each to
    /// the handler's whole process group (Foundation starts every process as the leader of its own), so a
    /// shell's children stop with it rather than running on as orphans.
    private func run(_ process: Process) async throws -> Int32 {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                process.terminationHandler = { process in continuation.resume(returning: process.terminationStatus) }
                do { try process.run() } catch {
                    process.terminationHandler = nil
                    continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            let group = process.processIdentifier
            guard group > 0 else { return }
            kill(-group, SIGTERM)
            let grace = terminationGrace
            // A cancellation handler cannot wait: the kill after the grace period runs on a task of its own.
            Task {
                try? await Task.sleep(for: grace)
                // The group outlives its leader while any member runs; ESRCH once all are gone.
                kill(-group, SIGKILL)
            }
        }
    }

    /// Reads the handler's stderr as it grows and reports each `progress <completed> <total>` line.
    private static func followProgress(in file: URL, for work: ParticipantWork) async {
        var offset = 0
        var pending = ""
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(200))
            guard let data = try? Data(contentsOf: file), data.count > offset else { continue }
            pending += String(decoding: data[offset...], as: UTF8.self)
            offset = data.count
            while let newline = pending.firstIndex(of: "\n") {
                let line = pending[..<newline].split(separator: " ")
                pending = String(pending[pending.index(after: newline)...])
                if line.count == 3, line[0] == "progress", let completed = Double(line[1]), let total = Double(line[2]) {
                    work.progress(completed: completed, total: total)
                }
            }
        }
    }
}

/// A system user executable handlers run as, looked up once when the agent starts.
public struct HandlerUser: Sendable, Hashable {
    public let name: String
    public let uid: uid_t
    public let gid: gid_t

    static let setpriv = URL(fileURLWithPath: "/usr/bin/setpriv")

    /// `name` as the system knows it; only an agent started as root may hand handlers another user.
    public init(named name: String) throws(HandlerUserError) {
        guard let entry = getpwnam(name) else { throw HandlerUserError("there is no user \(name) on this machine") }
        guard geteuid() == 0 else {
            throw HandlerUserError("running handlers as \(name) needs the agent to start as root (it gives them that user's ids)")
        }
        guard FileManager.default.isExecutableFile(atPath: Self.setpriv.path) else {
            throw HandlerUserError("running handlers as another user needs \(Self.setpriv.path) (util-linux)")
        }
        self.name = name
        uid = entry.pointee.pw_uid
        gid = entry.pointee.pw_gid
    }
}

public struct HandlerUserError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
