import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization
import TaskyardDomain
import TaskyardSecurity
import TaskyardStore

/// Turns a request's bearer token into the token's record. Tokens are cached for `cacheLifetime` (by the
/// digest of the secret, never the secret), so a revocation reaches every replica within that time; and
/// `last_used_at` is written for all the tokens used since the last write, every `touchInterval`, in one
/// statement, rather than once per request.
final class Authenticator: Service, Sendable {
    typealias Configuration = AuthenticationConfiguration

    private let credentials: CredentialStore
    private let configuration: Configuration
    private let logger: Logger
    private let cache: Mutex<TokenCache>
    private let used = Mutex<Set<Int64>>([])

    init(credentials: CredentialStore, configuration: Configuration, logger: Logger) {
        self.credentials = credentials
        self.configuration = configuration
        self.logger = logger
        cache = Mutex(TokenCache(capacity: configuration.maximumCachedTokens,
                                 maximumAge: configuration.cacheLifetime))
    }

    /// The request's token, valid now; 401 otherwise.
    func authenticate(_ request: Request) async throws -> APIToken {
        try await authenticate(authorization: request.headers[.authorization])
    }

    /// Whether the token in `authorization` is still valid, as this server knows it (at most the cache's
    /// age late): what a long stream asks now and then, so that it ends once its token is revoked or
    /// expired. A database that cannot be asked ends nothing.
    func stillValid(authorization: String?) async -> Bool {
        do {
            _ = try await authenticate(authorization: authorization)
            return true
        } catch let error as APIError {
            return error.status != .unauthorized
        } catch {
            return true
        }
    }

    private func authenticate(authorization header: String?) async throws -> APIToken {
        guard let header else {
            throw APIError.unauthenticated("an Authorization: Bearer <token> header is required")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", !parts[1].isEmpty, parts[1].count <= 512 else {
            throw APIError.unauthenticated("the Authorization header must be Bearer <token>")
        }
        let secret = String(parts[1]).trimmingCharacters(in: .whitespaces)
        // No issued token looks otherwise: no query, and no entry to push the real tokens out of the cache.
        guard TokenSecret.isWellFormed(secret) else {
            throw APIError.unauthenticated("the token is unknown, expired or revoked")
        }
        let token = try await record(digest: TokenSecret.hash(secret))
        guard let token, token.isValid() else {
            throw APIError.unauthenticated("the token is unknown, expired or revoked")
        }
        _ = used.withLock { $0.insert(token.id) }
        return token
    }

    private func record(digest: String) async throws -> APIToken? {
        let now = ContinuousClock.now
        if let cached = cache.withLock({ $0.lookup(digest, now: now) }) { return cached }
        let token = try await credentials.token(secretHash: digest)
        cache.withLock { $0.insert(token, for: digest, now: now) }
        return token
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.configuration.touchInterval)
                await self.writeLastUsed()
            }
        }
        await writeLastUsed()
    }

    private func writeLastUsed() async {
        let ids = used.withLock { used in
            defer { used.removeAll() }
            return Array(used)
        }
        guard !ids.isEmpty else { return }
        do {
            try await credentials.touchTokens(ids)
        } catch {
            logger.warning("cannot record token use", metadata: ["error": "\(error)"])
        }
    }
}

/// How the server checks tokens.
public struct AuthenticationConfiguration: Sendable {
    /// How long a token's record is trusted without asking the database: a revocation reaches every
    /// replica within this time. Default 2 s.
    public var cacheLifetime: Duration = .seconds(2)
    /// How often `last_used_at` is written. Default 5 s.
    public var touchInterval: Duration = .seconds(5)
    /// Most records cached (unknown tokens are cached too, so that a flood of made-up tokens cannot each
    /// cost a query); past it the least recently used go. Default 10,000.
    public var maximumCachedTokens = 10_000

    public init() {}
}

/// Token records by the digest of their secret, each trusted for `maximumAge`, at most `capacity` of them.
/// When full, the stale ones go first, then the least recently used quarter: a flood of made-up tokens
/// pushes out the least used records, never the tokens in use.
struct TokenCache {
    private struct Entry {
        let token: APIToken?
        let fetched: ContinuousClock.Instant
        var used: ContinuousClock.Instant
    }

    let capacity: Int
    let maximumAge: Duration
    private var entries: [String: Entry] = [:]

    init(capacity: Int, maximumAge: Duration) {
        self.capacity = max(capacity, 1)
        self.maximumAge = maximumAge
    }

    var count: Int { entries.count }

    /// The record (nil inside: no such token) while it is fresh; nil when it must be fetched.
    mutating func lookup(_ digest: String, now: ContinuousClock.Instant) -> APIToken?? {
        guard var entry = entries[digest], now - entry.fetched < maximumAge else { return nil }
        entry.used = now
        entries[digest] = entry
        return .some(entry.token)
    }

    mutating func insert(_ token: APIToken?, for digest: String, now: ContinuousClock.Instant) {
        if entries[digest] == nil, entries.count >= capacity {
            entries = entries.filter { now - $0.value.fetched < maximumAge }
            if entries.count >= capacity {
                let leastUsed = entries.sorted { $0.value.used < $1.value.used }.prefix(max(1, capacity / 4)).map(\.key)
                for key in leastUsed { entries[key] = nil }
            }
        }
        entries[digest] = Entry(token: token, fetched: now, used: now)
    }
}
