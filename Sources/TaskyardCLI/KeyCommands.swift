import ArgumentParser
import Foundation
import TaskyardAPI
import TaskyardCommandLine
import TaskyardSecurity

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "The servers' key file, and the signing keys of a cluster: list, rotate, retire.",
        discussion: """
            A cluster's grants (what lets a participant trust a fan-out) are signed with its newest signing key; agents verify them with the public keys. The private keys are stored in the database sealed with the servers' key file (`serve --key-file`), which the database never holds: every replica is started with the same one, and it is as secret as the admin token.

            Examples:
              taskyard keys create-file /etc/taskyard/server.key
              taskyard keys list --cluster c1
              taskyard keys rotate --cluster c1
              taskyard keys retire --cluster c1 ed25519-0123456789abcdef
            """,
        subcommands: [CreateFile.self, List.self, Rotate.self, Retire.self]
    )

    struct CreateFile: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create-file",
            abstract: "Write a new key file (mode 0600) for `serve --key-file`; never over an existing file.",
            discussion: "Example:\n  taskyard keys create-file /etc/taskyard/server.key")
        @Argument(help: ArgumentHelp("Where to write it.", valueName: "path")) var path: String
        @Flag(help: "Leave a key file that is already there as it is (deployment scripts run this on every start).")
        var ifMissing = false

        func run() throws {
            if ifMissing, FileManager.default.fileExists(atPath: path) {
                _ = try KeyFile.load(path: path)
                return say("\(path) holds a key already; left as it is")
            }
            try KeyFile.create(path: path)
            say("wrote a new key file to \(path): give every server the same one (--key-file), and keep it as secret as the admin token")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a cluster's live signing keys, the signing one first.",
                                                        discussion: "Example:\n  taskyard keys list --cluster c1")
        @OptionGroup var serverOptions: ServerOptions
        @OptionGroup var clusterOption: ClusterOption
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let keys = try await serverOptions.client().signingKeys(cluster: clusterOption.id)
            if json { return try printJSON(SigningKeyList(keys: keys)) }
            var table = Table("Key", "Algorithm", "Public key", "Signs")
            for (index, key) in keys.enumerated() { table.add(key.id, key.algorithm, key.publicKey, index == 0 ? "yes" : "") }
            say(table.rendered)
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new signing key for a cluster; it signs from now on, the old ones still verify until retired (admin).",
            discussion: "Example:\n  taskyard keys rotate --cluster c1")
        @OptionGroup var serverOptions: ServerOptions
        @OptionGroup var clusterOption: ClusterOption

        func run() async throws {
            let key = try await serverOptions.client().rotateSigningKey(cluster: clusterOption.id)
            say("\(key.id) signs cluster \(clusterOption.id)'s grants from now on; retire the old key once running tasks have finished")
        }
    }

    struct Retire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Retire a signing key: its private half is erased, and agents refuse its grants once they re-read the keys (admin).",
            discussion: "Example:\n  taskyard keys retire --cluster c1 ed25519-0123456789abcdef")
        @OptionGroup var serverOptions: ServerOptions
        @OptionGroup var clusterOption: ClusterOption
        @Argument(help: ArgumentHelp("The key's id, as `taskyard keys list` shows it.", valueName: "key-id")) var keyID: String

        func run() async throws {
            try await serverOptions.client().retireSigningKey(cluster: clusterOption.id, id: keyID)
            say("retired \(keyID) of cluster \(clusterOption.id)")
        }
    }
}
