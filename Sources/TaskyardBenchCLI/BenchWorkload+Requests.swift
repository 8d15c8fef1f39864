import TaskyardAPI
import TaskyardDomain

/// What the workload submits: the request for the task at an index, and the payload every task carries.
extension BenchWorkload {
    func request(_ index: Int) -> SubmitTaskRequest {
        SubmitTaskRequest(type: type, participatingNodes: participatingNodes(index), payload: payload)
    }

    /// A payload of about `bytes` bytes that looks like a cluster manager's: a list of volumes, each with
    /// numbers, strings and a nested object. 0: `{}`.
    static func payload(bytes: Int) -> RawJSON {
        guard bytes > 2 else { return .emptyObject }
        var text = #"{"volumes":["#
        var index = 0
        while text.utf8.count < bytes - 2 {
            if index > 0 { text += "," }
            text += #"{"id":\#(100_000 + index),"name":"vol-\#(index)","size_bytes":1073741824,"replicas":3,"#
                + #""zone":"eu-\#(index % 3)a","labels":{"tier":"gold","owner":"team-\#(index % 7)"},"ratio":0.75}"#
            index += 1
        }
        return RawJSON(validating: text + "]}") ?? .emptyObject
    }
}
