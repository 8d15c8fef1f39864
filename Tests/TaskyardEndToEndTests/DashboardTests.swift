import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardTestSupport

/// What the dashboard stands on: its files served from the binary with a strict policy, and the change
/// stream that keeps its pages live. (The page itself is driven in Chromium by .ci/browser_test.py.)
@Suite("Dashboard")
struct DashboardTests {
    @Test("/ui and its files come from the binary, with no token, under a policy that allows only their own scripts and styles")
    func assets() async throws {
        try await Deployment.run(nodes: []) { deployment in
            let page = try await APIContractTests.send(deployment, "GET", "/ui", authorized: false)
            #expect(page.status == 200)
            #expect(page.headers["content-type"]?.hasPrefix("text/html") == true)
            let html = String(decoding: page.body, as: UTF8.self)
            #expect(html.contains("<script src=\"/ui/app.js\"") && html.contains("id=\"token\""))
            let policy = try #require(page.headers["content-security-policy"])
            #expect(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'") && !policy.contains("unsafe"))
            let script = try await APIContractTests.send(deployment, "GET", "/ui/app.js", authorized: false)
            #expect(script.status == 200 && script.headers["content-type"]?.hasPrefix("text/javascript") == true)
            #expect(String(decoding: script.body, as: UTF8.self).contains("sessionStorage"))
            let styles = try await APIContractTests.send(deployment, "GET", "/ui/app.css", authorized: false)
            #expect(styles.status == 200 && styles.headers["content-type"]?.hasPrefix("text/css") == true)
        }
    }

    @Test("GET …/changes streams a work event when a node gets a task and a finished event when it ends; it needs read on the cluster")
    func changeStream() async throws {
        try await Deployment.run(nodes: ["n1"]) { deployment in
            var request = HTTPClientRequest(url: deployment.serverURL + "/api/v1/clusters/c1/changes?timeout=20")
            request.headers.add(name: "Authorization", value: "Bearer \(try await deployment.store.mintToken(scopes: [.read], cluster: "c1"))")
            let response = try await HTTPTransport.shared.client.execute(request, timeout: .seconds(30))
            #expect(response.status.code == 200)
            #expect(response.headers["content-type"].first == "text/event-stream")
            var body = response.body.makeAsyncIterator()
            var received = ""
            let first = try #require(try await body.next())
            received += String(buffer: first)
            #expect(received.hasPrefix("retry: 2000\n"))

            let task = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
            let deadline = ContinuousClock.now + .seconds(15)
            while !received.contains("event: finished\ndata: {\"task_id\": \(task.id)}\n\n"), ContinuousClock.now < deadline {
                guard let chunk = try await body.next() else { break }
                received += String(buffer: chunk)
            }
            #expect(received.contains("event: work\ndata: {\"node\": \"n1\"}\n\n"), "\(received)")
            #expect(received.contains("event: finished\ndata: {\"task_id\": \(task.id)}\n\n"), "\(received)")

            // With timeout=0 the stream ends at once; without a token, or for another cluster's token, none.
            let ended = try await APIContractTests.send(deployment, "GET", "/api/v1/clusters/c1/changes?timeout=0")
            #expect(ended.status == 200)
            #expect(try await APIContractTests.send(deployment, "GET", "/api/v1/clusters/c1/changes?timeout=0", authorized: false).status == 401)
            _ = try await deployment.client.createCluster(id: "c2")
            let other = try await deployment.store.mintToken(scopes: [.read], cluster: "c2")
            #expect(try await APIContractTests.send(deployment, "GET", "/api/v1/clusters/c1/changes?timeout=0",
                                                    headers: ["Authorization": "Bearer \(other)"], authorized: false).status == 403)
        }
    }
}
