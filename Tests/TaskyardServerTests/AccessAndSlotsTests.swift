import Foundation
import Testing
import TaskyardDomain
@testable import TaskyardServer

/// The server's parts that decide without a database or a network: who may call a route, and how many
/// long requests a token or a client address may hold.
@Suite("Access rules")
struct AccessTests {
    static func token(_ kind: TokenKind, scopes: [TokenScope] = [], cluster: String? = nil, node: String? = nil) -> APIToken {
        APIToken(id: 1, kind: kind, name: "t", scopes: scopes, clusterID: cluster, nodeID: node, createdAt: Date(),
                 expiresAt: nil, lastUsedAt: nil, revokedAt: nil)
    }

    @Test("client scopes: read reads, operate does not administer, admin does all; a cluster-bound token stays in its cluster")
    func clientScopes() {
        let reader = Self.token(.client, scopes: [.read])
        let operatorInC1 = Self.token(.client, scopes: [.operate], cluster: "c1")
        let admin = Self.token(.client, scopes: [.admin])
        #expect(Access.client(.read).allows(reader, cluster: "c1", node: nil))
        #expect(!Access.client(.operate).allows(reader, cluster: "c1", node: nil))
        #expect(Access.client(.operate).allows(operatorInC1, cluster: "c1", node: nil))
        #expect(!Access.client(.operate).allows(operatorInC1, cluster: "c2", node: nil), "bound to c1")
        #expect(!Access.client(.admin).allows(operatorInC1, cluster: "c1", node: nil))
        #expect(TokenScope.allCases.allSatisfy { Access.client($0).allows(admin, cluster: "any", node: nil) })
        #expect(Access.open.allows(reader, cluster: nil, node: nil))
    }

    @Test("node tokens: their own node's paths and their cluster's node lists, nothing else")
    func nodeTokens() {
        let n1 = Self.token(.node, cluster: "c1", node: "n1")
        #expect(Access.pathNode.allows(n1, cluster: "c1", node: "n1"))
        #expect(!Access.pathNode.allows(n1, cluster: "c1", node: "n2"), "another node's poll")
        #expect(!Access.pathNode.allows(n1, cluster: "c2", node: "n1"), "the same name in another cluster")
        #expect(Access.clientOrClusterNode(.read).allows(n1, cluster: "c1", node: nil))
        #expect(!Access.clientOrClusterNode(.read).allows(n1, cluster: "c2", node: nil))
        #expect(!Access.client(.read).allows(n1, cluster: "c1", node: nil), "a node token is no client")
        #expect(Access.pathNode.allows(Self.token(.client, scopes: [.admin]), cluster: "c1", node: "n1"), "admin may act for a node")
        #expect(!Access.pathNode.allows(Self.token(.client, scopes: [.operate]), cluster: "c1", node: "n1"))
    }
}

@Suite("Stream slots")
struct StreamSlotsTests {
    @Test("a token holds at most its share, an address too; a slot released or dropped is given back once")
    func shares() throws {
        let slots = StreamSlots()
        let first = try slots.take(1, limit: 2, address: "10.0.0.1", addressLimit: 3).get()
        var second: StreamSlots.Slot? = try slots.take(1, limit: 2, address: "10.0.0.1", addressLimit: 3).get()
        guard case .failure(.token) = slots.take(1, limit: 2, address: "10.0.0.1", addressLimit: 3) else {
            Issue.record("a third slot for token 1"); return
        }
        let third = try slots.take(2, limit: 2, address: "10.0.0.1", addressLimit: 3).get()
        guard case .failure(.address) = slots.take(3, limit: 2, address: "10.0.0.1", addressLimit: 3) else {
            Issue.record("a fourth slot for the address"); return
        }
        #expect((try? slots.take(3, limit: 2, address: "10.0.0.2", addressLimit: 3).get()) != nil, "another address is not held up")
        first.release()
        first.release()
        let again = try slots.take(1, limit: 2, address: "10.0.0.1", addressLimit: 3).get()
        guard case .failure(.token) = slots.take(1, limit: 2, address: "10.0.0.1", addressLimit: 3) else {
            Issue.record("released twice, given back twice"); return
        }
        second = nil  // dropped, as a response body that never ran: given back
        let replaced = try slots.take(1, limit: 2, address: "10.0.0.1", addressLimit: 3).get()
        withExtendedLifetime((third, again, replaced, second)) {}
    }
}
