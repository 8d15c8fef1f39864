import Foundation
import Testing
import TaskyardDomain

@Suite("Webhook rules")
struct WebhookRuleTests {
    @Test("a webhook URL is a node endpoint and a path: nothing else gets in")
    func urls() throws {
        let url = try WebhookURL(parsing: "https://hooks.example.com:8443/in/taskyard%2Fx")
        #expect(url.endpoint.host == "hooks.example.com" && url.endpoint.port == 8443 && url.path == "/in/taskyard%2Fx")
        #expect(url.description == "https://hooks.example.com:8443/in/taskyard%2Fx")
        #expect(try WebhookURL(parsing: "http://127.0.0.1:9000").description == "http://127.0.0.1:9000")
        #expect(try WebhookURL(parsing: "http://[::1]:9000/a").path == "/a")
        for bad in ["ftp://h:1/x", "http://h/x", "http://h:0/x", "http://u:p@h:1/x", "http://h:1/x?q", "http://h:1/x#f",
                    "http://h:1/a b", "http://h:1/%zz", "h:1/x", "http://h:1\\x", ""] {
            #expect(throws: TaskyardError.self, "\(bad)") { try WebhookURL(parsing: bad) }
        }
    }

    @Test("events are task.<state>; types are task types; both named by index when wrong")
    func definitions() throws {
        let definition = try WebhookDefinition(url: "http://h:1/x", events: ["task.failed", "task.completed", "task.failed"], types: nil)
        #expect(definition.events == ["task.failed", "task.completed"])
        #expect(WebhookEvent.all == ["task.queued", "task.received", "task.completed", "task.failed", "task.cancelled"])
        func field(_ events: [String], _ types: [String]?) -> String? {
            do { _ = try WebhookDefinition(url: "http://h:1/x", events: events, types: types); return nil } catch { return error.field }
        }
        #expect(field([], nil) == "events")
        #expect(field(["task.completed", "completed"], nil) == "events[1]")
        #expect(field(["task.completed"], []) == "types")
        #expect(field(["task.completed"], ["ok", "a.b"]) == "types[1]")
        #expect(field(["task.completed"], ["ok"]) == nil)
    }

    @Test("failed deliveries wait four times longer each time, at most six hours apart")
    func backoff() {
        let backoff = WebhookBackoff()
        #expect([1, 2, 3, 4].map { backoff.delay(afterAttempt: $0) } == [.seconds(5), .seconds(20), .seconds(80), .seconds(320)])
        #expect(backoff.delay(afterAttempt: 9) == .seconds(6 * 3600) && backoff.delay(afterAttempt: 500) == .seconds(6 * 3600))
        for _ in 0..<100 {
            let jittered = backoff.jittered(afterAttempt: 2)
            #expect(jittered >= .seconds(18) && jittered <= .seconds(22))
        }
    }
}
