import EmbeddedPostgres
import Foundation
import TaskyardSecurity

/// Things tests need from the machine: the built `taskyard` binary, free loopback ports.
public enum TestEnvironment {
    /// The `taskyard` executable built next to the test bundle (`swift build` / `swift test` build it).
    public static var taskyardBinary: URL? { builtBinary(named: "taskyard") }

    /// A program of this package, built beside the tests (`taskyard`, `taskyard-agent`, `taskyard-bench`).
    public static func builtBinary(named name: String) -> URL? {
        let folder = Bundle.main.executableURL?.deletingLastPathComponent()
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [folder, folder.deletingLastPathComponent()] {
            let binary = candidate.appending(path: name)
            if FileManager.default.isExecutableFile(atPath: binary.path) { return binary }
        }
        return nil
    }

    /// Runs the `taskyard` binary to completion; its exit status and its output (stdout and stderr).
    public static func runTaskyard(_ arguments: [String], environment: [String: String] = [:],
                                   in directory: URL? = nil) throws -> (status: Int32, output: String) {
        guard let binary = taskyardBinary else { throw TestEnvironmentError("the taskyard executable is not built next to the tests") }
        return try run(binary, arguments, environment: environment, in: directory)
    }

    /// Runs any program to completion; its exit status and its output (stdout and stderr).
    public static func run(_ executable: URL, _ arguments: [String], environment: [String: String] = [:],
                           in directory: URL? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// The same, waiting on a thread of its own: for tests whose subprocess talks to a server running
    /// in the test process, which needs the cooperative threads meanwhile.
    public static func runTaskyardAsync(_ arguments: [String], environment: [String: String] = [:],
                                        in directory: URL? = nil) async throws -> (status: Int32, output: String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try runTaskyard(arguments, environment: environment, in: directory) }) }.start()
        }
    }

    /// A fresh folder holding one executable file per entry (name → script), for handler tests.
    public static func makeExecutables(_ scripts: [String: String]) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appending(path: "taskyard-handlers-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, script) in scripts {
            // Close-on-exec: a process forked meanwhile by another test must not keep the file open for
            // writing, or running it fails with "text file busy".
            let descriptor = open(folder.appending(path: name).path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
            guard descriptor >= 0 else { throw TestEnvironmentError("cannot write \(name): \(String(cString: strerror(errno)))") }
            let bytes = Array(script.utf8)
            let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            close(descriptor)
            guard written == bytes.count else { throw TestEnvironmentError("cannot write \(name)") }
        }
        return folder
    }

    /// The servers' key file of this test process: every server a test runs (in the process or as a
    /// `taskyard serve` child, given `--key-file` with `keyFilePath`) seals and opens signing keys with it.
    public static let keyFilePath: String = {
        let path = FileManager.default.temporaryDirectory.appending(path: "taskyard-test-\(getpid())-\(UUID().uuidString).key").path
        _ = try? KeyFile.create(path: path)
        return path
    }()

    public static var keyFile: KeyFile {
        // The file was made above, mode 0600, by this process: it loads.
        try! KeyFile.load(path: keyFilePath)
    }

    /// `count` consecutive TCP ports that are free on 127.0.0.1 right now.
    public static func freePorts(_ count: Int) -> [Int] { LocalPorts.free(count) }
}

public struct TestEnvironmentError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
