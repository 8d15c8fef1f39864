import ServiceLifecycle
import TaskyardStore

/// The store's connections as a service of the process's group: listed first, it is shut down last, once
/// the server and the agents that use it have stopped; then its connections close.
public struct StoreService: Service {
    let store: TaskStore

    public init(store: TaskStore) {
        self.store = store
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await store.close()
    }
}
