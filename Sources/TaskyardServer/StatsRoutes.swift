import Foundation
import Hummingbird
import TaskyardAPI
import TaskyardDomain

/// `GET …/stats`: the charts' series, from the buckets the maintenance leader keeps (`StatsRollup`).
extension APIRoutes {
    func stats(_ request: Request, _ context: TaskyardRequestContext) async throws -> Response {
        try request.rejectEmptyQueryValues()
        let cluster = try context.pathIdentifier("cluster_id")
        let window: StatsWindow
        // A query parameter's mistake is a 400, as every list's is.
        do { window = try StatsWindow(window: request.query("window"), step: request.query("step")) }
        catch { throw APIError.badRequest(error.message, field: error.field) }
        let scope: StatsScope
        switch (request.query("type"), request.query("node")) {
        case (nil, nil): scope = .cluster
        case (let type?, nil): scope = .type(type)
        case (nil, let node?): scope = .node(node)
        case (.some, .some): throw APIError.badRequest("give type or node, not both", field: "node")
        }
        let points = try await store.stats.series(cluster: cluster, scope: scope, window: window)
        return try jsonResponse(StatsSeriesObject(clusterID: cluster, scope: scope, window: window, points: points))
    }
}
