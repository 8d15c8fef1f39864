import NIOSSL

/// A listener's certificate chain and private key, PEM files (`--tls-cert-file`, `--tls-key-file`).
public struct TLSFiles: Sendable, Hashable {
    public var certificateFile: String
    public var keyFile: String

    public init(certificateFile: String, keyFile: String) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }

    /// TLS 1.2 or later, with the chain and key read now (a bad file fails at start-up, not on a handshake).
    public func serverConfiguration() throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    }

    /// What a client trusts: the system's roots, or only the CAs in `caFile` (`--ca-file`).
    public static func clientConfiguration(caFile: String?) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let caFile {
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
        }
        return configuration
    }

    /// Both files, or neither; one alone is a mistake worth stopping for.
    public static func from(certificateFile: String?, keyFile: String?) throws(TLSFilesError) -> TLSFiles? {
        switch (certificateFile, keyFile) {
        case (nil, nil): return nil
        case (let certificate?, let key?): return TLSFiles(certificateFile: certificate, keyFile: key)
        default: throw TLSFilesError()
        }
    }
}

public struct TLSFilesError: Error, CustomStringConvertible {
    public var description: String { "--tls-cert-file and --tls-key-file go together: give both, or neither" }
}
