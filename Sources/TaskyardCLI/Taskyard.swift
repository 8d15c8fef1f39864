import ArgumentParser
import TaskyardCommandLine

@main
struct Taskyard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "taskyard",
        abstract: "A task queue server backed by PostgreSQL.",
        discussion: """
            Tasks are written to PostgreSQL as queued, claimed by the node agent of their assigned node, fanned out to their participating nodes, and recorded as completed or failed.
            """,
        subcommands: [DevCommand.self, BenchCommand.self, ServeCommand.self, AgentCommand.self, MigrateCommand.self, TokenCommand.self, ClusterCommand.self, NodeCommand.self, TaskCommand.self]
    )
}
