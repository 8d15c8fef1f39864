import TaskyardCommandLine

/// `taskyard-agent`: the same command as `taskyard agent`, in a binary of its own.
@main
enum TaskyardAgentMain {
    static func main() async {
        EventLoopExecutor.install()
        await AgentCommand.main()
    }
}
