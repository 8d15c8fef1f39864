import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization
import TaskyardAPI
import TaskyardClient
import TaskyardDomain

/// Gathers an initiator's participant calls to the same node from concurrent tasks into one request
/// (`POST …/participant-calls`), over the transport's kept-alive connections.
///
/// A node has at most one batch on its way at a time: the calls made while it is being sent wait, and go
/// together as the next batch the moment the participant has taken it (its answer's head arrived). An
/// idle node's call therefore goes at once, alone, and a busy node's calls go many to a request. Answers
/// stream back a line per call as each ends, so a slow handler holds up no other call of its batch. A
/// participant that does not serve batches (an older agent: 404 or 405) gets its calls one by one from
/// then on.
final class ParticipantBatcher: Sendable {
    typealias Answer = ParticipantClient.Answer

    /// Longest answer line read from a participant: a result of the server's largest, and a long error.
    static let maximumLineBytes = 2 << 20

    /// Most calls, and most bytes of calls, in one batch: within what a participant takes.
    static let maximumCalls = ParticipantEndpoint.maximumBatchCalls
    static let maximumBytes = 1 << 20

    private struct Item: Sendable {
        let id: Int
        let node: String
        let endpoint: NodeEndpoint
        let call: ParticipantCall
        let encoded: Data
        /// nil: the caller stopped waiting.
        let waiter: OnceContinuation<Answer?>
        let alone: @Sendable () async throws -> Answer
    }

    private struct State {
        var running = false
        /// Calls waiting for a batch, by endpoint, oldest first. A ring buffer: a batch is taken from the
        /// front without moving the calls behind it (an array's copy per batch made a busy node's queue
        /// quadratic — thousands of calls copied per batch of sixteen).
        var pending: [String: CircularBuffer<Item>] = [:]
        /// Endpoints with a batch on its way.
        var sending: Set<String> = []
        /// Endpoints that answered the batch route 404 or 405.
        var unsupported: Set<String> = []
        var wake: CheckedContinuation<Void, Never>?
        var nextID = 0
    }

    private let state = Mutex(State())
    private let transport: HTTPTransport
    private let timeout: Duration

    init(transport: HTTPTransport, timeout: Duration) {
        self.transport = transport
        self.timeout = timeout
    }

    /// The call's answer, in a batch when the `run` loop runs (else alone, through `alone`). Throws only
    /// on cancellation.
    func call(_ call: ParticipantCall, node: String, at endpoint: NodeEndpoint,
              alone: @escaping @Sendable () async throws -> Answer) async throws -> Answer {
        let key = endpoint.description
        guard let encoded = try? APIJSON.encode(call) else { return .failed("the call for node \(node) cannot be encoded") }
        let waiter = OnceContinuation<Answer?>()
        let (queued, wake) = state.withLock { state -> (Int?, CheckedContinuation<Void, Never>?) in
            guard state.running, !state.unsupported.contains(key), encoded.count < Self.maximumBytes else { return (nil, nil) }
            state.nextID += 1
            state.pending[key, default: []].append(Item(id: state.nextID, node: node, endpoint: endpoint, call: call,
                                                        encoded: encoded, waiter: waiter, alone: alone))
            defer { state.wake = nil }
            return (state.nextID, state.wake)
        }
        guard let queued else { return try await alone() }
        wake?.resume()
        let answer = await withTaskCancellationHandler {
            await withCheckedContinuation { waiter.set($0) }
        } onCancel: {
            // Not sent yet: it never will be. Sent: its line is no longer awaited (the fan-out tells the
            // participant to stop through the cancel route).
            state.withLock { state in state.pending[key]?.removeAll { $0.id == queued } }
            waiter.resume(nil)
        }
        guard let answer else { throw CancellationError() }
        return answer
    }

    /// Sends batches until cancelled; calls made while it runs are batched. Calls still waiting when it
    /// ends go alone.
    func run() async {
        state.withLock { $0.running = true }
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                for batch in await nextBatches() {
                    group.addTask { await self.send(batch) }
                }
            }
            let left = state.withLock { state -> [Item] in
                state.running = false
                defer { state.pending = [:] }
                return state.pending.values.flatMap { $0 }
            }
            for item in left {
                group.addTask { item.waiter.resume(try? await item.alone()) }
            }
        }
    }

    /// The next batch of each endpoint that has calls waiting and none on its way (marked on its way
    /// now); waits until there is one, or the task is cancelled.
    private func nextBatches() async -> [[Item]] {
        while !Task.isCancelled {
            let batches = state.withLock { state -> [[Item]] in
                var batches: [[Item]] = []
                for key in Array(state.pending.keys) where state.pending[key]?.isEmpty == false && !state.sending.contains(key) {
                    var batch: [Item] = []
                    var bytes = 0
                    while batch.count < Self.maximumCalls, let next = state.pending[key]?.first,
                          batch.isEmpty || bytes + next.encoded.count + 1 <= Self.maximumBytes {
                        bytes += next.encoded.count + 1
                        batch.append(state.pending[key]!.removeFirst())
                    }
                    state.sending.insert(key)
                    batches.append(batch)
                }
                return batches
            }
            if !batches.isEmpty { return batches }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let ready = state.withLock { state -> Bool in
                        let due = state.pending.contains { key, items in !items.isEmpty && !state.sending.contains(key) }
                        if due || Task.isCancelled { return true }
                        state.wake = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            } onCancel: {
                state.withLock { state in
                    defer { state.wake = nil }
                    return state.wake
                }?.resume()
            }
        }
        return []
    }

    /// The batch is on its way no more: the endpoint's next batch may go.
    private func sent(_ key: String) {
        state.withLock { state in
            state.sending.remove(key)
            defer { state.wake = nil }
            return state.wake
        }?.resume()
    }

    private func send(_ batch: [Item]) async {
        let first = batch[0]
        let key = first.endpoint.description
        var body = Data("{\"calls\":[".utf8)
        for (index, item) in batch.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body.append(item.encoded)
        }
        body.append(contentsOf: Array("]}".utf8))
        var request = HTTPClientRequest(url: first.endpoint.url(["api", "v1", "participant-calls"]))
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        // The participant reads the body only for a grant it trusts: the first call's.
        request.headers.add(name: "Authorization", value: "Bearer \(first.call.grant)")
        request.body = .bytes(ByteBuffer(bytes: body))
        let response: HTTPClientResponse
        do {
            // The batch's calls may each take the participant timeout; a little more covers the envelope.
            response = try await transport.client.execute(request, timeout: .milliseconds(timeout.wholeMilliseconds + 10_000))
        } catch {
            sent(key)
            let reason = "cannot reach node \(first.node) at \(first.endpoint): \(ParticipantClient.sanitized(String(describing: error)))"
            for item in batch { item.waiter.resume(.failed(reason)) }
            return
        }
        sent(key)
        let status = Int(response.status.code)
        if status == 404 || status == 405 {
            state.withLock { _ = $0.unsupported.insert(key) }
            await withDiscardingTaskGroup { group in
                for item in batch { group.addTask { item.waiter.resume(try? await item.alone()) } }
            }
            return
        }
        guard status == 200 else {
            let error = (try? await response.body.collect(upTo: 1 << 16)).flatMap { try? APIJSON.decode(ErrorBody.self, from: Data($0.readableBytesView)) }
            for item in batch {
                item.waiter.resume(ParticipantClient.answer(status: status, error: error?.error, node: item.node,
                                                            rollback: item.call.rollback ?? false))
            }
            return
        }
        var answered = Set<Int>()
        var buffered = Data()
        do {
            for try await part in response.body {
                buffered.append(contentsOf: part.readableBytesView)
                while let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = buffered[buffered.startIndex..<newline]
                    buffered = Data(buffered[buffered.index(after: newline)...])
                    guard let decoded = try? APIJSON.decode(ParticipantBatchLine.self, from: Data(line)),
                          batch.indices.contains(decoded.index), answered.insert(decoded.index).inserted
                    else { continue }
                    let item = batch[decoded.index]
                    item.waiter.resume(Self.answer(decoded, item: item))
                }
                if buffered.count > Self.maximumLineBytes { break }
            }
        } catch {}
        for (index, item) in batch.enumerated() where !answered.contains(index) {
            item.waiter.resume(.failed("node \(item.node) ended its answer to a batch before this call's"))
        }
    }

    private static func answer(_ line: ParticipantBatchLine, item: Item) -> Answer {
        if (200..<300).contains(line.status) { return .completed(line.result?.unlessNull) }
        return ParticipantClient.answer(status: line.status, error: line.error, node: item.node, rollback: item.call.rollback ?? false)
    }
}
