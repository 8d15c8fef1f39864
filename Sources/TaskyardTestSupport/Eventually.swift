/// Waits until `condition` holds, looking every `step`, and fails naming `what` once `limit` has passed: a
/// test waits for what it waits for, never for a fixed time.
public func eventually(_ what: String, within limit: Duration = .seconds(30), every step: Duration = .milliseconds(50),
                       _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + limit
    while !(try await condition()) {
        guard ContinuousClock.now < deadline else { throw EventuallyError(description: "\(what) did not happen within \(limit)") }
        try await Task.sleep(for: step)
    }
}

public struct EventuallyError: Error, CustomStringConvertible {
    public let description: String
}
