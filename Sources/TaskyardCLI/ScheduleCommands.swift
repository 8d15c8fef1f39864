import ArgumentParser
import Foundation
import TaskyardAPI
import TaskyardClient
import TaskyardCommandLine
import TaskyardDomain

struct ScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "Make, list, show, pause, resume and delete schedules: a task submitted at every slot of a cron expression.",
        subcommands: [Create.self, List.self, Show.self, Pause.self, Resume.self, Delete.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a schedule.",
            discussion: """
                The cron expression has five fields (minute hour day-of-month month day-of-week), or is an alias
                (@hourly, @daily, @weekly, @monthly, @yearly) or @every <duration> (30s, 5m, 1h30m).

                Examples:
                  taskyard schedule create nightly --cron "30 2 * * *" --timezone Europe/Berlin --type noop --nodes n1,n2,n3
                  taskyard schedule create probe --cron "@every 1m" --type echo --nodes n1 --catch-up one
                """
        )
        @Argument(help: "Schedule id: 1–64 characters from A-Z a-z 0-9 . _ -") var id: String
        @Option(help: ArgumentHelp("When: five cron fields, an alias, or @every <duration>.", valueName: "expression")) var cron: String
        @Option(help: ArgumentHelp("The IANA time zone of the cron fields. Default UTC.", valueName: "zone")) var timezone: String?
        @Option(help: "Task type of each slot's task.") var type: String
        @Option(help: ArgumentHelp("Participating nodes, comma-separated.", valueName: "n1,n2")) var nodes: String
        @Option(help: ArgumentHelp("Payload, a JSON object. Default {}.", valueName: "json")) var payload: String?
        @Option(help: ArgumentHelp("Slots missed while no leader ran: skip (default), one or all.", valueName: "mode")) var catchUp: String?
        @Flag(help: "Make it paused: no slot is submitted until it is resumed.") var paused = false
        @OptionGroup var serverOptions: ServerOptions
        @OptionGroup var clusterOption: ClusterOption
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let payloadValue = try payload.map(parsePayload)
            let task = SubmitTaskRequest(type: type, participatingNodes: commaSeparated(nodes),
                                         payload: payloadValue)
            let request = ScheduleRequest(id: id, cron: cron, timezone: timezone, task: task, catchUp: try choice(catchUp, "--catch-up"),
                                          paused: paused ? true : nil)
            let schedule = try await serverOptions.client().createSchedule(cluster: clusterOption.id, request)
            if json { return try printJSON(schedule) }
            say("schedule \(schedule.id): \(schedule.cron) (\(schedule.timezone)), next run \(shortTime(schedule.nextRunAt))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the cluster's schedules.",
                                                        discussion: "Example:\n  taskyard schedule list --cluster dev")
        @OptionGroup var serverOptions: ServerOptions
        @OptionGroup var clusterOption: ClusterOption
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let schedules = try await serverOptions.client().schedules(cluster: clusterOption.id)
            if json { return try printJSON(ScheduleList(schedules: schedules)) }
            var table = Table("Schedule", "Cron", "Time zone", "Catch-up", "Paused", "Next run", "Last run", "Last task")
            for schedule in schedules {
                table.add(schedule.id, schedule.cron, schedule.timezone, schedule.catchUp.rawValue, schedule.paused ? "yes" : "no",
                          shortTime(schedule.nextRunAt), shortTime(schedule.lastRunAt), schedule.lastTaskID.map(String.init) ?? "-")
            }
            say(table.rendered)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a schedule and its task request.",
                                                        discussion: "Example:\n  taskyard schedule show nightly --cluster dev")
        @OptionGroup var target: Target
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let schedule = try await target.serverOptions.client().schedule(cluster: target.clusterOption.id, id: target.id)
            if json { return try printJSON(schedule) }
            say("""
                schedule \(schedule.id)\(schedule.paused ? " (paused)" : "")
                  cron      \(schedule.cron) (\(schedule.timezone)), catch-up \(schedule.catchUp.rawValue)
                  next run  \(shortTime(schedule.nextRunAt))
                  last run  \(shortTime(schedule.lastRunAt))\(schedule.lastTaskID.map { ", task \($0)" } ?? "")
                  task      \(schedule.task)
                """)
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause a schedule: no slot is submitted until it is resumed.",
                                                        discussion: "Example:\n  taskyard schedule pause nightly --cluster dev")
        @OptionGroup var target: Target

        func run() async throws { try await target.setPaused(true) }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a schedule from its first slot after now.",
                                                        discussion: "Example:\n  taskyard schedule resume nightly --cluster dev")
        @OptionGroup var target: Target

        func run() async throws { try await target.setPaused(false) }
    }

    /// The schedule a command acts on, and where.
    struct Target: ParsableArguments {
        @Argument(help: "Schedule id.") var id: String
        @OptionGroup var serverOptions: ServerOptions
        @OptionGroup var clusterOption: ClusterOption

        func setPaused(_ paused: Bool) async throws {
            let schedule = try await serverOptions.client().setSchedulePaused(paused, cluster: clusterOption.id, id: id)
            say(paused ? "schedule \(id) paused" : "schedule \(id) resumed, next run \(shortTime(schedule.nextRunAt))")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a schedule (the tasks it submitted stay).",
                                                        discussion: "Example:\n  taskyard schedule delete nightly --cluster dev")
        @OptionGroup var target: Target

        func run() async throws {
            try await target.serverOptions.client().deleteSchedule(cluster: target.clusterOption.id, id: target.id)
            say("schedule \(target.id) deleted")
        }
    }
}
