import Logging
import TaskyardStore

/// A background duty run by the maintenance leader, every `configuration.interval`.
public protocol MaintenanceDuty: Sendable {
    associatedtype Configuration: MaintenanceDutyConfiguration
    var name: String { get }
    var configuration: Configuration { get }
    func run(_ context: MaintenanceContext) async throws
    /// Stops whatever `run` left running beside it (this replica no longer leads, or it shuts down).
    func stop() async
}

/// Every duty's configuration says how often it runs.
public protocol MaintenanceDutyConfiguration: Sendable {
    var interval: Duration { get }
}

extension MaintenanceDuty {
    public var interval: Duration { configuration.interval }
    /// Most duties leave nothing running.
    public func stop() async {}
}

/// What the duties work with: the store, and where to say what they did.
public struct MaintenanceContext: Sendable {
    public let store: TaskStore
    public let logger: Logger

    public init(store: TaskStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }
}
