import Foundation
import Logging
import Synchronization
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
@testable import TaskyardAgent

/// The report sender against a server played by the test: batches, the split of a batch refused whole,
/// a report refused alone sent again as a plain failure, and every report's `done` called once.
@Suite("Report sender")
struct ReportSenderTests {
    /// What the test's server saw and answers: a batch of more than `largest` reports is refused whole (413),
    /// a report whose result is `"bad"` alone (422); every other report is taken.
    final class Server: Sendable {
        let largest: Int
        let batches = Mutex<[[Int64]]>([])
        let taken = Mutex<[Int64: TaskReport]>([:])

        init(largest: Int) { self.largest = largest }

        func answer(_ batch: StateReportBatchRequest) throws -> StateReportBatchResponse {
            batches.withLock { $0.append(batch.reports.map(\.taskID)) }
            guard batch.reports.count <= largest else {
                throw TaskyardClient.Failure(status: 413, error: ErrorBody(code: .tooLarge, message: "too large"), rawBody: "")
            }
            return StateReportBatchResponse(results: batch.reports.map { item in
                if item.report.result == "bad" {
                    return .init(taskID: item.taskID, status: 422, error: .init(code: .invalidField, message: "result is bad", field: "result"))
                }
                taken.withLock { $0[item.taskID] = item.report.report }
                return .init(taskID: item.taskID, status: 200, state: item.report.state.taskState)
            })
        }
    }

    static func report(_ id: Int64, result: RawJSON = ["ok": true]) -> TaskReport {
        TaskReport(attempt: 1, lease: "lease-\(id)", state: .completed, result: result,
                   participants: [ParticipantOutcome(node: "n1", state: .completed, result: result)])
    }

    /// Queues the reports before the sender runs (so they go as one batch), then runs it to the end.
    static func send(_ reports: [(Int64, TaskReport)], to server: Server) async -> [Int64] {
        let done = Mutex<[Int64]>([])
        let sender = ReportSender(metrics: AgentMetrics(), logger: Logger(label: "test")) { try server.answer($0) }
        for (id, report) in reports { sender.send(report, for: id) { done.withLock { $0.append(id) } } }
        sender.finish()
        await sender.run()
        return done.withLock { $0 }
    }

    @Test("queued reports go in one request; each report's done runs once")
    func oneBatch() async {
        let server = Server(largest: 1000)
        let done = await Self.send((1...5).map { ($0, Self.report($0)) }, to: server)
        #expect(server.batches.withLock { $0 } == [[1, 2, 3, 4, 5]])
        #expect(done.sorted() == [1, 2, 3, 4, 5])
    }

    @Test("a batch refused whole as too large is split in halves until the parts are taken: nothing is dropped")
    func splitAndResend() async {
        let server = Server(largest: 2)
        let done = await Self.send((1...7).map { ($0, Self.report($0)) }, to: server)
        #expect(Set(server.taken.withLock { $0.keys }) == Set(1...7), "every report reached the server")
        let batches = server.batches.withLock { $0 }
        #expect(batches.first?.count == 7 && batches.filter { $0.count <= 2 }.flatMap { $0 }.sorted() == Array(1...7))
        #expect(done.sorted() == Array(1...7))
    }

    @Test("a report refused alone goes once more as a plain failure that says why; the others are untouched")
    func refusedAloneBecomesPlainFailure() async throws {
        let server = Server(largest: 1000)
        let done = await Self.send([(1, Self.report(1)), (2, Self.report(2, result: "bad")), (3, Self.report(3))], to: server)
        let taken = server.taken.withLock { $0 }
        #expect(taken[1]?.state == .completed && taken[3]?.state == .completed)
        let plain = try #require(taken[2])
        #expect(plain.state == .failed && plain.result == nil)
        #expect(plain.error == "the server refused this report: result is bad")
        #expect(plain.participants.map(\.node) == ["n1"] && plain.participants[0].result == nil, "outcomes kept, without results")
        #expect(server.batches.withLock { $0 } == [[1, 2, 3], [2]])
        #expect(done.sorted() == [1, 2, 3])
    }

    @Test("a plain failure refused again is not resent for ever")
    func plainFailureNotResent() {
        let item = StateReportBatchRequest.Item(taskID: 1, report: StateReportRequest(Self.report(1)))
        let plain = try! #require(ReportSender.plainFailure(item, refusal: "no"))
        #expect(ReportSender.plainFailure(plain, refusal: "no again") == nil)
    }
}
