import Foundation
import Hummingbird
import TaskyardAPI
import TaskyardDomain
import TaskyardSecurity
import TaskyardStore

extension APIRoutes {
    /// Makes a token and shows its secret, once. A token bound to a cluster makes tokens for that cluster only.
    func createToken(_ request: inout Request, _ caller: APIToken) async throws -> Response {
        let body = try await decode(CreateTokenRequest.self, &request)
        let tokenRequest = body.request
        if let bound = caller.clusterID, tokenRequest.clusterID != bound {
            throw APIError.forbidden("this token is bound to cluster \(bound): it makes tokens for that cluster only (cluster_id \(bound))")
        }
        let secret = TokenSecret.generate()
        let token = try await credentials.createToken(tokenRequest, secretHash: TokenSecret.hash(secret))
        return try jsonResponse(TokenObject(token, secret: secret), status: .created)
    }

    func listTokens(_ caller: APIToken) async throws -> Response {
        let tokens = try await credentials.tokens(cluster: caller.clusterID)
        return try jsonResponse(TokenList(tokens: tokens.map { TokenObject($0) }))
    }

    /// Revokes a token: every replica refuses it within the authentication cache's lifetime (2 s).
    func revokeToken(_ context: TaskyardRequestContext, _ caller: APIToken) async throws -> Response {
        let text = context.parameters.get("token_id") ?? ""
        let notFound = APIError(.notFound, code: "token_not_found", message: "token \(text) does not exist")
        guard let id = Int64(text), id > 0, let token = try await credentials.token(id: id) else { throw notFound }
        // A token bound to a cluster does not learn of other clusters' tokens.
        guard caller.clusterID == nil || token.clusterID == caller.clusterID else { throw notFound }
        try await credentials.revokeToken(id: id)
        return Response(status: .noContent)
    }

    /// The cluster's public keys; the first request for a cluster without one makes it.
    func signingKeys(_ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let keys = try await grants.publicKeys(cluster: cluster)
        return try jsonResponse(SigningKeyList(keys: keys.map { key in
            SigningKeyList.Key(id: key.id, algorithm: key.algorithm,
                               publicKey: (Hex.decode(key.publicKeyHex) ?? Data()).base64EncodedString())
        }))
    }
}
