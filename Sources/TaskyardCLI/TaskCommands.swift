import ArgumentParser
import TaskyardCommandLine
import Foundation
import TaskyardAPI
import TaskyardClient
import Postgres
import TaskyardDomain
import TaskyardStore

struct TaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task",
        abstract: "Submit, list, inspect, cancel and retry tasks.",
        subcommands: [Submit.self, List.self, Show.self, Tree.self, Wait.self, Watch.self, Events.self, Cancel.self, Retry.self, Delete.self,
                      Prune.self]
    )

    struct Submit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Submit a task.",
            discussion: """
                The first participating node is the initiator unless --assign least_loaded.

                Example:
                  taskyard task submit volume_create --nodes n1,n2,n3 --payload '{"name": "vol1"}'
                  taskyard task submit volume_create --nodes n1,n2,n3 --complete-when quorum --concurrency-key vol1
                """
        )
        @Argument(help: "Task type; the participants need a handler for it.") var type: String
        @Option(help: ArgumentHelp("Participating nodes, comma-separated.", valueName: "n1,n2")) var nodes: String
        @Option(help: ArgumentHelp("Payload, a JSON object. Default {}.", valueName: "json")) var payload: String?
        @Option(help: "Higher runs first. Default 0.") var priority: Int?
        @Option(help: "Attempts before the task fails for good. Default: the server's, 3.") var maxAttempts: Int?
        @Option(help: ArgumentHelp("Not before this RFC 3339 time.", valueName: "time")) var runAfter: String?
        @Option(help: "Tasks with one key run one at a time, in order.") var orderingKey: String?
        @Option(help: "first (default) or least_loaded.") var assign: String?
        @Option(help: ArgumentHelp("When the fan-out is done: all (default), any, quorum, or a number N (at least N succeeded).",
                                   valueName: "policy")) var completeWhen: String?
        @Option(help: "At most --concurrency-limit running tasks of this key in the cluster at once.") var concurrencyKey: String?
        @Option(help: ArgumentHelp("Running tasks of the key at once. Default 1.", valueName: "n")) var concurrencyLimit: Int?
        @Option(help: ArgumentHelp("When the key is full: queue (default), cancel_newest or cancel_in_progress.", valueName: "strategy"))
        var onLimit: String?
        @Option(help: ArgumentHelp("While a node it runs on is offline: wait (default) or fail.", valueName: "policy")) var onOffline: String?
        @Option(help: ArgumentHelp("A follow-up task submitted when it finishes, of this type on this node (its payload: how this one ended).",
                                   valueName: "type@node")) var onFinish: String?
        @Option(help: "Repeat-safe submission: the same key returns the first task.") var idempotencyKey: String?
        @Option(help: "Copied to the task and its children (X-Opaque-Id).") var opaqueId: String?
        @OptionGroup var serverOptions: ServerOptions
        @OptionGroup var clusterOption: ClusterOption
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let payloadValue = try payload.map(parsePayload)
            let runAfterDate: Date? = try runAfter.map { text in
                guard let date = RFC3339.parse(text) else { throw ValidationError("--run-after must be an RFC 3339 time") }
                return date
            }
            let policy: AssignPolicy? = try choice(assign, "--assign")
            let completion: JSONValue? = completeWhen.map { text in Int(text).map { ["at_least": .integer(Int64($0))] } ?? .string(text) }
            let strategy: LimitStrategy? = try choice(onLimit, "--on-limit")
            let offline: OfflinePolicy? = try choice(onOffline, "--on-offline")
            let followUp: JSONValue? = try onFinish.map { text in
                let parts = text.split(separator: "@", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw ValidationError("--on-finish takes type@node, such as volume_record@n1") }
                return ["type": .string(String(parts[0])), "node": .string(String(parts[1]))]
            }
            let request = SubmitTaskRequest(
                type: type, participatingNodes: commaSeparated(nodes),
                payload: payloadValue, priority: priority, runAfter: runAfterDate, maxAttempts: maxAttempts,
                orderingKey: orderingKey, assign: policy, completeWhen: completion, concurrencyKey: concurrencyKey,
                concurrencyLimit: concurrencyLimit, onLimit: strategy, onOffline: offline, onFinish: followUp)
            let task = try await serverOptions.client().submit(cluster: clusterOption.id, request,
                                                             idempotencyKey: idempotencyKey, opaqueID: opaqueId)
            if json { return try printJSON(task) }
            say("task \(task.id) \(task.state.rawValue), assigned to \(task.assignedNode) (participants: \(task.participatingNodes.joined(separator: ", ")))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List tasks, oldest first (like `kadalu task list`).",
            discussion: """
                Root tasks only, unless --children. Follows pages up to --limit tasks.

                Example:
                  taskyard task list --state failed --type volume_create
                """
        )
        @Option(help: "queued, received, completed, failed or cancelled; comma-separated for several.") var state: String?
        @Option(help: "Only this task type.") var type: String?
        @Option(help: "Only tasks assigned to this node.") var node: String?
        @Option(help: ArgumentHelp("Created at or after this RFC 3339 time.", valueName: "time")) var since: String?
        @Option(help: "Most tasks to print. Default 100.") var limit = 100
        @Flag(help: "Include sub-tasks (tasks submitted with a parent).") var children = false
        @OptionGroup var serverOptions: ServerOptions
        @OptionGroup var clusterOption: ClusterOption
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            guard limit > 0 else { throw ValidationError("--limit must be positive") }
            var query: [String: String] = [:]
            query["state"] = state
            query["type"] = type
            query["node"] = node
            query["since"] = since
            if !children { query["parent_id"] = "none" }
            var tasks: [TaskObject] = []
            var cursor: String?
            repeat {
                query["limit"] = String(min(1000, limit - tasks.count))
                query["after"] = cursor
                let page = try await serverOptions.client().tasks(cluster: clusterOption.id, query: query)
                tasks += page.tasks
                cursor = page.next
            } while cursor != nil && tasks.count < limit
            if json { return try printJSON(TaskList(tasks: tasks, next: cursor)) }
            var table = Table("Task ID", "State", "Assigned To", "Type", "Created", "Attempt")
            for task in tasks {
                table.add(String(task.id), task.state.rawValue, task.assignedNode, task.type, shortTime(task.createdAt),
                          "\(task.attempt)/\(task.maxAttempts)")
            }
            say(table.rendered)
            if cursor != nil { say("(more: raise --limit to see them)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a task, with each participant's outcome and error.",
            discussion: "Example:\n  taskyard task show 42"
        )
        @OptionGroup var target: TaskTarget
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let detail = try await target.client().task(cluster: target.cluster, id: target.id)
            if json { return try printJSON(detail) }
            let task = detail.task
            var lines = [
                "Task \(task.id)  \(task.type)  \(task.state.rawValue.uppercased())\(task.cancelRequested && !task.state.isTerminal ? " (cancel requested)" : "")",
                "  cluster       \(task.clusterID)",
                "  assigned to   \(task.assignedNode)",
                "  participants  \(task.participatingNodes.joined(separator: ", "))",
                "  complete when \(ParticipantMatrix.policy(task.completeWhen))",
                "  attempt       \(task.attempt) of \(task.maxAttempts)",
                "  payload       \(compact(task.payload))",
                "  created       \(shortTime(task.createdAt))",
                "  received      \(shortTime(task.receivedAt))",
                "  finished      \(shortTime(task.finishedAt))",
            ]
            if let progress = ProgressBar(task.progress), !task.state.isTerminal { lines.append("  progress      \(progress.text)") }
            if let key = task.concurrencyKey { lines.append("  concurrency   \(key), at most \(task.concurrencyLimit ?? 1) at once") }
            if let waiting = task.waitingFor { lines.append("  waiting for   \(waiting.joined(separator: ", ")) (no free slot, or offline)") }
            if case .object(let followUp)? = task.onFinish, case .string(let type)? = followUp["type"], case .string(let node)? = followUp["node"] {
                lines.append("  on finish     \(type)@\(node)\(task.followUpID.map { ", follow-up task \($0)" } ?? "")")
            }
            if let schedule = task.scheduleID { lines.append("  schedule      \(schedule), slot \(shortTime(task.scheduleSlot))") }
            if let parent = task.parentID { lines.append("  parent        \(parent)") }
            if let opaque = task.opaqueID { lines.append("  opaque id     \(opaque)") }
            if let result = task.result { lines.append("  result        \(compact(result))") }
            if let error = task.error { lines.append("  error         \(error)") }
            say(lines.joined(separator: "\n"))
            say("\nParticipants")
            var table = Table("Node", "Attempt", "State", "Finished", "Result / error")
            for participant in task.participants {
                table.add(participant.node + (participant.decided ? " *" : ""), String(participant.attempt), participant.state.rawValue,
                          shortTime(participant.finishedAt), ParticipantMatrix.outcome(of: participant))
            }
            say(table.rendered)
            if task.participants.contains(where: \.decided) { say("* decided the task") }
            guard !detail.children.isEmpty else { return }
            say("\nSub-tasks")
            var children = Table("Task ID", "Type", "State", "Assigned To", "Attempt", "Finished")
            for child in detail.children {
                children.add(String(child.id), child.type, child.state.rawValue, child.assignedNode, String(child.attempt),
                             shortTime(child.finishedAt))
            }
            say(children.rendered)
        }
    }

    struct Tree: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Draw a task and all its descendants (sub-tasks), each with its participants' states.",
            discussion: "Example:\n  taskyard task tree 42"
        )
        @OptionGroup var target: TaskTarget
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let tasks = try await target.client().tree(cluster: target.cluster, id: target.id)
            if json { return try printJSON(TaskBatch(tasks: tasks)) }
            say(TreeDrawing(tasks).lines.joined(separator: "\n"))
        }
    }

    struct Wait: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Wait for a task to finish.",
            discussion: """
                Exit status: 0 completed, 1 failed, 2 cancelled, 124 the timeout passed first (like timeout(1)); other errors exit 64 or more.

                Example:
                  taskyard task wait 42 --timeout 120 && echo done
                """
        )
        @OptionGroup var target: TaskTarget
        @Option(help: "Seconds to wait, at most 300. Default 30.") var timeout = 30.0
        @Flag(name: .shortAndLong, help: "Print nothing; only the exit status tells.") var quiet = false

        func run() async throws {
            guard timeout >= 0, timeout <= 300 else { throw ValidationError("--timeout must be 0–300 seconds") }
            let (task, timedOut) = try await waitShowingProgress()
            if !quiet {
                say(timedOut ? "task \(task.id) still \(task.state.rawValue) after \(timeout) s"
                             : "task \(task.id) \(task.state.rawValue)\(task.error.map { ": \($0)" } ?? "")")
            }
            if timedOut { throw ExitCode(124) }
            return try exitStatus(for: task)
        }

        /// On a terminal, waits in one-second steps and redraws a progress bar between them; otherwise
        /// one wait for the whole timeout.
        private func waitShowingProgress() async throws -> (TaskObject, Bool) {
            guard !quiet, isatty(STDOUT_FILENO) == 1 else {
                return try await target.client().wait(cluster: target.cluster, id: target.id, timeout: .seconds(timeout))
            }
            let deadline = ContinuousClock.now + .seconds(timeout)
            while true {
                let remaining = deadline - ContinuousClock.now
                let (task, timedOut) = try await target.client().wait(cluster: target.cluster, id: target.id,
                                                                    timeout: max(.zero, min(.seconds(1), remaining)))
                if !timedOut || remaining <= .seconds(1) {
                    FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8))
                    return (task, timedOut)
                }
                let bar = ProgressBar(task.progress).map { "  \($0.text)" } ?? " …"
                FileHandle.standardOutput.write(Data("\r\u{1B}[Ktask \(task.id) \(task.state.rawValue)\(bar)".utf8))
            }
        }

    }

    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a task's participants, one row per node, redrawn until the task ends.",
            discussion: """
                On a terminal the matrix is redrawn in place; otherwise a new one is printed each time it changes. Woken by the task's end at once, refreshed every --interval seconds meanwhile.

                Exit status as task wait: 0 completed, 1 failed, 2 cancelled, 124 --timeout passed first; other errors exit 64 or more.

                Example:
                  taskyard task watch 42
                """
        )
        @OptionGroup var target: TaskTarget
        @Option(help: "Seconds between redraws while the task runs. Default 1.") var interval = 1.0
        @Option(help: "Give up after this many seconds (exit 124). Default: watch until the task ends.") var timeout: Double?

        func run() async throws {
            guard interval >= 0.1, interval <= 60 else { throw ValidationError("--interval must be 0.1–60 seconds") }
            if let timeout, timeout < 0 { throw ValidationError("--timeout must not be negative") }
            let client = try target.client()
            let onTerminal = isatty(STDOUT_FILENO) == 1
            let deadline = timeout.map { ContinuousClock.now + .seconds($0) }
            var drawn: [String] = []
            while true {
                let detail = try await client.task(cluster: target.cluster, id: target.id)
                let lines = ParticipantMatrix(detail).lines
                if lines != drawn {
                    // Up over the last drawing and clear to the end of the screen, then draw anew.
                    let erase = onTerminal && !drawn.isEmpty ? "\u{1B}[\(drawn.count)A\u{1B}[J" : (drawn.isEmpty ? "" : "\n")
                    FileHandle.standardOutput.write(Data((erase + lines.joined(separator: "\n") + "\n").utf8))
                    drawn = lines
                }
                if detail.task.state.isTerminal { return try exitStatus(for: detail.task) }
                if let deadline, ContinuousClock.now >= deadline { throw ExitCode(124) }
                let remaining = deadline.map { $0 - ContinuousClock.now } ?? .seconds(interval)
                _ = try await client.wait(cluster: target.cluster, id: target.id, timeout: max(.zero, min(.seconds(interval), remaining)))
            }
        }
    }

    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete finished tasks older than a cut-off, with their sub-tasks and history.",
            discussion: """
                Works on the database directly, like migrate, in small batches. A tree with a task still running is kept. Servers do the same by themselves after --retention (30 days by default).

                Example:
                  taskyard task prune --older-than 7d --state failed --database-url postgres://taskyard@127.0.0.1/taskyard
                """
        )
        @Option(help: ArgumentHelp("Only tasks that finished longer ago than this: 7d, 12h, 30m, 45s.", valueName: "duration"))
        var olderThan: String
        @Option(help: "Only tasks that ended in this state: completed, failed or cancelled; comma-separated for several.")
        var state: String?
        @Option(help: "Only this cluster. Default: every cluster.") var cluster: String?
        @Option(help: ArgumentHelp("PostgreSQL URL or libpq keywords. Default: $TASKYARD_DATABASE_URL.", valueName: "url"))
        var databaseURL: String?

        func run() async throws {
            let age = try parseDuration(olderThan, option: "--older-than")
            let states: [TaskState]? = try state.map { text in
                try text.split(separator: ",").map { name in
                    guard let state = TaskState(rawValue: String(name)), state.isTerminal else {
                        throw ValidationError("--state takes completed, failed or cancelled (got \(name))")
                    }
                    return state
                }
            }
            let (store, _) = try await TaskStore.open(database: try PostgresConfiguration(try DatabaseURL.resolve(databaseURL)),
                                                      poolSize: 1, migrate: false)
            var total = 0
            while true {
                let deleted = try await store.maintenance.pruneFinished(olderThan: age, states: states, cluster: cluster)
                total += deleted
                if deleted > 0 { say("deleted \(total) finished tasks so far …") }
                if deleted < 500 { break }
            }
            await store.close()
            say("deleted \(total) finished task\(total == 1 ? "" : "s") older than \(olderThan), with their sub-tasks and history")
        }
    }

    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a task's history: every state transition.",
            discussion: "Example:\n  taskyard task events 42"
        )
        @OptionGroup var target: TaskTarget
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let events = try await target.client().events(cluster: target.cluster, id: target.id)
            if json { return try printJSON(EventList(events: events)) }
            var table = Table("At", "From", "To", "Node", "Attempt", "Detail")
            for event in events {
                table.add(RFC3339.format(event.at), event.from?.rawValue ?? "-", event.to.rawValue, event.node ?? "-",
                          String(event.attempt), event.detail.map { compact($0) } ?? "")
            }
            say(table.rendered)
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a task: a queued one at once, a running one when its agent stops it.",
            discussion: "Example:\n  taskyard task cancel 42 --reason \"wrong volume\""
        )
        @OptionGroup var target: TaskTarget
        @Option(help: "Recorded in the task's history.") var reason: String?

        func run() async throws {
            let task = try await target.client().cancel(cluster: target.cluster, id: target.id, reason: reason)
            say(task.state == .cancelled ? "task \(target.id) cancelled" : "task \(target.id) asked to stop; its agent will cancel it")
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue a failed or cancelled task again, with a fresh attempt budget.",
            discussion: """
                The next attempt runs only the participants without a completed outcome (the others' carry forward), unless the failed attempt rolled back; --participants all runs every one again.

                Examples:
                  taskyard task retry 42
                  taskyard task retry 42 --participants all
                """
        )
        @OptionGroup var target: TaskTarget
        @Option(help: ArgumentHelp("failed: only the participants without a completed outcome; all: every one. Default: failed.", valueName: "which"))
        var participants: String?

        func run() async throws {
            if let participants, !RetryRequest.choices.contains(participants) {
                throw ValidationError("--participants takes failed or all (got \(participants))")
            }
            let task = try await target.client().retry(cluster: target.cluster, id: target.id, participants: participants)
            say("task \(target.id) \(task.state.rawValue) again")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a finished task, its children and their history.",
            discussion: "Example:\n  taskyard task delete 42"
        )
        @OptionGroup var target: TaskTarget

        func run() async throws {
            try await target.client().delete(cluster: target.cluster, id: target.id)
            say("task \(target.id) deleted")
        }
    }
}

/// `task wait` and `task watch`: 0 completed, 1 failed, 2 cancelled.
private func exitStatus(for task: TaskObject) throws {
    switch task.state {
    case .completed: return
    case .failed: throw ExitCode(1)
    default: throw ExitCode(2)
    }
}

/// One task of one cluster on one server: what show, events, cancel, retry and delete act on.
struct TaskTarget: ParsableArguments {
    @Argument(help: "Task id.") var id: Int64
    @OptionGroup var serverOptions: ServerOptions
    @OptionGroup var clusterOption: ClusterOption

    func client() throws -> TaskyardClient { try serverOptions.client() }
    var cluster: String { clusterOption.id }
}

/// A comma-separated option's values (`--nodes n1,n2`), spaces around each trimmed.
func commaSeparated(_ text: String) -> [String] {
    text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
}

/// `--payload`'s JSON.
func parsePayload(_ text: String) throws -> RawJSON {
    guard let raw = RawJSON(validating: text) else { throw ValidationError("--payload is not valid JSON: \(text)") }
    return raw
}

/// An option that names one of `Choice`'s cases; anything else is refused, naming them all.
func choice<Choice: RawRepresentable & CaseIterable>(_ text: String?, _ option: String) throws -> Choice?
where Choice.RawValue == String {
    guard let text else { return nil }
    if let value = Choice(rawValue: text) { return value }
    let names = Choice.allCases.map(\.rawValue)
    throw ValidationError("\(option) must be \(names.dropLast().joined(separator: ", ")) or \(names.last ?? "")")
}
