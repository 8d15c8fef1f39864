import Foundation

/// Starts programs with `posix_spawn` and reaps them with `waitpid`.
///
/// Foundation's `Process.waitUntilExit` never returned for `pg_ctl start` on Linux (the child stayed a
/// zombie while the server it started lived on), so the launcher uses the system calls directly.
public enum Subprocess {
    /// Runs a program to completion with stdin from /dev/null and stdout+stderr into `outputPath`.
    /// Returns its exit status (128 + signal when killed).
    public static func run(_ executable: String, _ arguments: [String], outputPath: String) throws -> Int32 {
        let pid = try spawn(executable, arguments, outputPath: outputPath)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw EmbeddedPostgresError("waitpid failed: \(String(cString: strerror(errno)))") }
        }
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    /// Runs a program to completion, returning its output, or throwing with it. Output goes through a
    /// file, not a pipe: `pg_ctl start` leaves the server running with the same output, and a pipe would
    /// never close.
    @discardableResult
    public static func capture(_ executable: String, _ arguments: [String]) throws -> String {
        let outputFile = FileManager.default.temporaryDirectory.appending(path: "taskyard-\(UUID().uuidString).out")
        defer { try? FileManager.default.removeItem(at: outputFile) }
        let status = try run(executable, arguments, outputPath: outputFile.path)
        let output = (try? String(contentsOf: outputFile, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw EmbeddedPostgresError("\(([executable] + arguments).joined(separator: " ")) failed (exit \(status)):\n\(output)")
        }
        return output
    }

    /// Stops `children` (SIGTERM, then SIGKILL 5 s later) once `parent` has exited, however it exited: a
    /// watcher of its own, so that a parent killed hard leaves no children behind.
    public static func stopWhenProcessExits(_ parent: pid_t, children: [pid_t]) throws {
        guard !children.isEmpty else { return }
        let pids = children.map(String.init).joined(separator: " ")
        let script = """
            while kill -0 \(parent) 2>/dev/null; do sleep 0.5; done
            kill -TERM \(pids) 2>/dev/null; sleep 5; kill -KILL \(pids) 2>/dev/null
            """
        try spawn("/usr/bin/setsid", ["sh", "-c", script])
    }

    /// Starts a program and returns at once; its output goes to `outputPath`. The caller never waits for it.
    @discardableResult
    public static func spawn(_ executable: String, _ arguments: [String], outputPath: String = "/dev/null") throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard result == 0 else {
            throw EmbeddedPostgresError("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// Waits up to `timeout` for a spawned process to exit; its exit status (128 + signal when killed),
    /// or nil if it is still running.
    public static func wait(_ pid: pid_t, timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        var status: Int32 = 0
        while ContinuousClock.now < deadline {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                let signal = status & 0x7F
                return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
            }
            if result == -1, errno != EINTR { return nil }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }
}
