import ArgumentParser
import Foundation
import TaskyardAPI
import TaskyardClient
import TaskyardCommandLine
import TaskyardDomain

struct WebhookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook",
        abstract: "Subscribe URLs to a cluster's task transitions (signed deliveries), and read and resend their deliveries (admin).",
        subcommands: [Create.self, List.self, Show.self, Delete.self, Deliveries.self, Resend.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Subscribe a URL; prints the signing secret, which is shown only now.",
            discussion: """
                Each delivery is a POST signed as the Standard Webhooks specification says (webhook-id,
                webhook-timestamp, webhook-signature): check it with the secret and any of its libraries.

                Examples:
                  taskyard webhook create https://hooks.example.com:443/taskyard --events task.completed,task.failed
                  taskyard webhook create http://127.0.0.1:9000/in --events task.failed --types volume_create
                """
        )
        @Argument(help: "Where to deliver: http(s)://host:port and a path.") var url: String
        @Option(help: ArgumentHelp("Transitions to deliver, comma-separated: \(WebhookEvent.all.joined(separator: ", ")).", valueName: "events"))
        var events: String
        @Option(help: ArgumentHelp("Only tasks of these types, comma-separated. Default: every type.", valueName: "types")) var types: String?
        @OptionGroup var serverOptions: ServerOptions
        @OptionGroup var clusterOption: ClusterOption
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let request = WebhookRequest(url: url, events: commaSeparated(events), types: types.map(commaSeparated))
            let webhook = try await serverOptions.client().createWebhook(cluster: clusterOption.id, request)
            if json { return try printJSON(webhook) }
            say("webhook \(webhook.id): \(webhook.url) for \(webhook.events.joined(separator: ", "))")
            say("signing secret (shown only now): \(webhook.secret ?? "")")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the cluster's webhook subscriptions.",
                                                        discussion: "Example:\n  taskyard webhook list --cluster dev")
        @OptionGroup var serverOptions: ServerOptions
        @OptionGroup var clusterOption: ClusterOption
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let webhooks = try await serverOptions.client().webhooks(cluster: clusterOption.id)
            if json { return try printJSON(WebhookList(webhooks: webhooks)) }
            var table = Table("Webhook", "URL", "Events", "Types", "Created")
            for webhook in webhooks {
                table.add(String(webhook.id), webhook.url, webhook.events.joined(separator: ","), webhook.types?.joined(separator: ",") ?? "all",
                          shortTime(webhook.createdAt))
            }
            say(table.rendered)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a webhook subscription (its secret is never shown again).",
                                                        discussion: "Example:\n  taskyard webhook show 3 --cluster dev")
        @OptionGroup var target: Target
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let webhook = try await target.serverOptions.client().webhook(cluster: target.clusterOption.id, id: target.id)
            if json { return try printJSON(webhook) }
            say("""
                webhook \(webhook.id)
                  url      \(webhook.url)
                  events   \(webhook.events.joined(separator: ", "))
                  types    \(webhook.types?.joined(separator: ", ") ?? "all")
                  created  \(shortTime(webhook.createdAt))
                """)
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a webhook subscription and its delivery log.",
                                                        discussion: "Example:\n  taskyard webhook delete 3 --cluster dev")
        @OptionGroup var target: Target

        func run() async throws {
            try await target.serverOptions.client().deleteWebhook(cluster: target.clusterOption.id, id: target.id)
            say("webhook \(target.id) deleted")
        }
    }

    struct Deliveries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A subscription's deliveries, newest first: status, attempts, last error, next try.",
                                                        discussion: "Examples:\n  taskyard webhook deliveries 3 --cluster dev\n  taskyard webhook deliveries 3 --status failed")
        @OptionGroup var target: Target
        @Option(help: ArgumentHelp("Only deliveries in this state: pending, delivered or failed.", valueName: "status")) var status: String?
        @Option(help: "Deliveries to show (1–1000).") var limit = 50
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            var query = ["limit": String(limit)]
            if let status { query["status"] = status }
            let page = try await target.serverOptions.client().deliveries(cluster: target.clusterOption.id, webhook: target.id, query: query)
            if json { return try printJSON(page) }
            var table = Table("Delivery", "Event", "Task", "Status", "Attempts", "Last answer", "Next try", "Made")
            for delivery in page.deliveries {
                let answer = delivery.lastError ?? delivery.lastStatusCode.map { "\($0)" } ?? "-"
                table.add(String(delivery.id), delivery.event, String(delivery.taskID), delivery.status.rawValue, String(delivery.attempts),
                          String(answer.prefix(60)), shortTime(delivery.nextAttemptAt), shortTime(delivery.createdAt))
            }
            say(table.rendered)
        }
    }

    struct Resend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send a delivery again now, with a day of attempts from now.",
                                                        discussion: "Example:\n  taskyard webhook resend 3 1207 --cluster dev")
        @OptionGroup var target: Target
        @Argument(help: "Delivery id (from `taskyard webhook deliveries`).") var delivery: Int64

        func run() async throws {
            let resent = try await target.serverOptions.client().resendDelivery(cluster: target.clusterOption.id, webhook: target.id, delivery: delivery)
            say("delivery \(resent.id) of webhook \(target.id) is pending again")
        }
    }

    /// The subscription a command acts on, and where.
    struct Target: ParsableArguments {
        @Argument(help: "Webhook id.") var id: Int64
        @OptionGroup var serverOptions: ServerOptions
        @OptionGroup var clusterOption: ClusterOption
    }
}
