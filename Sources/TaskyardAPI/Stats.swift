import Foundation
import TaskyardDomain

/// `GET …/clusters/{id}/stats`: a series of points over a window, one a step, oldest first.
public struct StatsSeriesObject: Codable, Sendable {
    public var clusterID: String
    /// The scope: one task type's or one initiating node's share (both nil: the whole cluster).
    public var type: String?
    public var node: String?
    public var windowSeconds: Int64
    public var stepSeconds: Int64
    public var points: [StatsPointObject]

    enum CodingKeys: String, CodingKey {
        case type, node, points
        case clusterID = "cluster_id", windowSeconds = "window_seconds", stepSeconds = "step_seconds"
    }

    public init(clusterID: String, scope: StatsScope, window: StatsWindow, points: [StatsPoint]) {
        self.clusterID = clusterID
        switch scope {
        case .cluster: (type, node) = (nil, nil)
        case .type(let name): (type, node) = (name, nil)
        case .node(let name): (type, node) = (nil, name)
        }
        windowSeconds = window.window.components.seconds
        stepSeconds = window.step.components.seconds
        self.points = points.map(StatsPointObject.init)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(clusterID, forKey: .clusterID)
        try container.encode(type, forKey: .type)
        try container.encode(node, forKey: .node)
        try container.encode(windowSeconds, forKey: .windowSeconds)
        try container.encode(stepSeconds, forKey: .stepSeconds)
        try container.encode(points, forKey: .points)
    }
}

/// One step: tasks finished in it by state, the most queued and received at one sample, and the p50 and
/// p99 pick-up and run times (ms) of what finished (null when nothing did).
public struct StatsPointObject: Codable, Sendable {
    public var at: Date
    public var completed: Int
    public var failed: Int
    public var cancelled: Int
    public var queued: Int
    public var received: Int
    public var pickupP50: Double?
    public var pickupP99: Double?
    public var runP50: Double?
    public var runP99: Double?

    enum CodingKeys: String, CodingKey {
        case at, completed, failed, cancelled, queued, received
        case pickupP50 = "pickup_p50_ms", pickupP99 = "pickup_p99_ms", runP50 = "run_p50_ms", runP99 = "run_p99_ms"
    }

    public init(_ point: StatsPoint) {
        at = point.at
        (completed, failed, cancelled) = (point.completed, point.failed, point.cancelled)
        (queued, received) = (point.queued, point.received)
        let rounded = { (value: Double?) in value.map { ($0 * 100).rounded() / 100 } }
        pickupP50 = rounded(point.pickup.quantile(0.5))
        pickupP99 = rounded(point.pickup.quantile(0.99))
        runP50 = rounded(point.run.quantile(0.5))
        runP99 = rounded(point.run.quantile(0.99))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(at, forKey: .at)
        try container.encode(completed, forKey: .completed)
        try container.encode(failed, forKey: .failed)
        try container.encode(cancelled, forKey: .cancelled)
        try container.encode(queued, forKey: .queued)
        try container.encode(received, forKey: .received)
        try container.encode(pickupP50, forKey: .pickupP50)
        try container.encode(pickupP99, forKey: .pickupP99)
        try container.encode(runP50, forKey: .runP50)
        try container.encode(runP99, forKey: .runP99)
    }
}
