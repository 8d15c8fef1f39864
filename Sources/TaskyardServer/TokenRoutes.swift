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
        let notFound = APIError(.notFound, code: .tokenNotFound, message: "token \(text) does not exist")
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
        return try jsonResponse(SigningKeyList(keys: keys.map(Self.keyObject)))
    }

    /// A new key that signs the cluster's grants from now on: 201 with its public half.
    func rotateSigningKey(_ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        return try jsonResponse(Self.keyObject(try await grants.rotate(cluster: cluster)), status: .created)
    }

    /// Retires a key: 204 (again for a key retired before), 404 when the cluster has no such key.
    func retireSigningKey(_ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let notFound = TaskyardError(.notFound, code: .signingKeyNotFound, message: "cluster \(cluster) has no such signing key")
        guard let keyID = try? context.pathIdentifier("key_id") else { throw notFound }
        guard try await grants.retire(cluster: cluster, keyID: keyID) else { throw notFound }
        return Response(status: .noContent)
    }

    static func keyObject(_ key: SigningKeyRecord) -> SigningKeyList.Key {
        SigningKeyList.Key(id: key.id, algorithm: key.algorithm, publicKey: (Hex.decode(key.publicKeyHex) ?? Data()).base64EncodedString())
    }
}
