/// A background duty run by the maintenance leader, every `interval`.
public protocol MaintenanceDuty: Sendable {
    var name: String { get }
    var interval: Duration { get }
    func run() async throws
}
