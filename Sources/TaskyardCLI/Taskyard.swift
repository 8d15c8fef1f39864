import ArgumentParser
import Foundation
import TaskyardClient
import TaskyardCommandLine

@main
struct Taskyard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "taskyard",
        abstract: "A task queue server backed by PostgreSQL.",
        discussion: """
            Tasks are written to PostgreSQL as queued, claimed by the node agent of their assigned node, fanned out to their participating nodes, and recorded as completed or failed.
            """,
        subcommands: [DevCommand.self, ServeCommand.self, AgentCommand.self, MigrateCommand.self, TokenCommand.self, KeysCommand.self, ClusterCommand.self, NodeCommand.self, TaskCommand.self, ScheduleCommand.self, WebhookCommand.self]
    )

    /// ArgumentParser's main, with the errors a person can act on said in one line, each with its own
    /// exit status (`CommandLineFailure`).
    static func main() async {
        EventLoopExecutor.install()
        do {
            var command = try await asyncParseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            guard let failure = CommandLineFailure(error) else { exit(withError: error) }
            FileHandle.standardError.write(Data(("Error: " + failure.message + "\n").utf8))
            Foundation.exit(failure.status)
        }
    }
}

/// The failures of commands that talk to a server, as one line that says which server, what failed and
/// what to do, with an exit status per kind (sysexits(3)): 69 the server cannot be reached, 77 it refused
/// the token. Other errors keep ArgumentParser's handling.
struct CommandLineFailure {
    static let unreachable: Int32 = 69
    static let refused: Int32 = 77

    let message: String
    let status: Int32

    init?(_ error: any Error) {
        switch error {
        case let unreachable as TaskyardClient.Unreachable:
            message = "\(unreachable.description). Start a server (`swift run taskyard dev`), or pass --server (or set TASKYARD_SERVER) to the one you mean."
            status = Self.unreachable
        case let failure as TaskyardClient.Failure where failure.status == 401:
            message = "the Taskyard server at \(failure.server) refused the token (\(failure.error?.error.message ?? "401 unauthenticated")). Pass one with --token, --token-file or TASKYARD_TOKEN; `taskyard token create` makes one."
            status = Self.refused
        case let failure as TaskyardClient.Failure where failure.status == 403:
            message = "the Taskyard server at \(failure.server) does not let this token do that (\(failure.error?.error.message ?? "403 forbidden")). Use a token with the scope it needs (read, submit, operate or admin) for this cluster."
            status = Self.refused
        default:
            return nil
        }
    }
}
