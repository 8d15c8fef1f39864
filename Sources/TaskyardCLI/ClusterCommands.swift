import ArgumentParser
import TaskyardCommandLine
import TaskyardAPI
import TaskyardClient

struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Create and list clusters.",
        subcommands: [Create.self, List.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a cluster.",
            discussion: "Example:\n  taskyard cluster create storage1 --name \"Storage pool 1\""
        )
        @Argument(help: "Cluster id: 1–64 characters from A-Z a-z 0-9 . _ -") var id: String
        @Option(help: "A name for people. Default: the id.") var name: String?
        @Flag(help: "Succeed when the cluster already exists (for scripts and containers).") var existOk = false
        @OptionGroup var serverOptions: ServerOptions
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            do {
                let cluster = try await serverOptions.client().createCluster(id: id, name: name)
                if json { try printJSON(cluster) } else { say("created cluster \(cluster.id)") }
            } catch let failure as TaskyardClient.Failure where failure.status == 409 && existOk {
                say("cluster \(id) already exists")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List clusters.", discussion: "Example:\n  taskyard cluster list")
        @OptionGroup var serverOptions: ServerOptions
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let clusters = try await serverOptions.client().clusters()
            if json { return try printJSON(ClusterList(clusters: clusters)) }
            var table = Table("Cluster", "Name", "Created")
            for cluster in clusters { table.add(cluster.id, cluster.name, shortTime(cluster.createdAt)) }
            say(table.rendered)
        }
    }
}

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "List the nodes of a cluster.",
        subcommands: [List.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the nodes of a cluster, with the tasks each holds.",
                                                        discussion: "Example:\n  taskyard node list --cluster dev")
        @OptionGroup var serverOptions: ServerOptions
        @OptionGroup var clusterOption: ClusterOption
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let nodes = try await serverOptions.client().nodes(cluster: clusterOption.id)
            if json { return try printJSON(NodeList(nodes: nodes)) }
            var table = Table("Node", "Status", "Endpoint", "Held", "In use", "Capacity", "Last seen")
            for node in nodes {
                table.add(node.id, node.status.rawValue, node.endpoint, String(node.heldTasks), String(node.inUse), String(node.capacity),
                          shortTime(node.lastSeenAt))
            }
            say(table.rendered)
        }
    }
}
