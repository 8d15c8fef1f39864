import Foundation
import PackagePlugin

/// Turns the package's `migrations/*.sql` into Swift source in the target that uses the plugin, so the
/// `taskyard` binary carries its schema wherever it is copied.
///
/// The tool reads the folder itself, and the folder is an input of the command: SwiftPM plans plugins
/// again only when sources change, so a list of files fixed here would miss a migration added later.
@main
struct EmbedMigrations: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let folder = context.package.directoryURL.appending(path: "migrations")
        let files = try FileManager.default
            .contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "sql" }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedMigrations.swift")
        return [
            .buildCommand(
                displayName: "Embedding migrations",
                executable: try context.tool(named: "EmbedMigrationsTool").url,
                arguments: [output.path, folder.path],
                inputFiles: [folder] + files,
                outputFiles: [output]
            ),
        ]
    }
}
