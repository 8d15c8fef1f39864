import HTTPTypes
import Hummingbird
import NIOCore

/// A file of the dashboard (`/ui`), compiled into the binary (`.embedInCode` in Package.swift), served
/// with headers that keep the page to itself: its own scripts and styles only, no framing, no referrer.
struct DashboardAsset: Sendable {
    let contentType: String
    let bytes: [UInt8]

    static let all: [(path: String, asset: DashboardAsset)] = [
        ("/ui", DashboardAsset(contentType: "text/html; charset=utf-8", bytes: PackageResources.index_html)),
        ("/ui/app.js", DashboardAsset(contentType: "text/javascript; charset=utf-8", bytes: PackageResources.app_js)),
        ("/ui/app.css", DashboardAsset(contentType: "text/css; charset=utf-8", bytes: PackageResources.app_css)),
    ]

    func response() -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        headers[.contentSecurityPolicy] = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
        headers[.xContentTypeOptions] = "nosniff"
        headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
