import Foundation
import TaskyardAPI
import TaskyardDomain

/// `GET /openapi.json`: the contract (docs/API.md) in OpenAPI 3.1. `OpenAPITests` checks that every
/// route the server registers is here with its method, and nothing else; the fuzzer in CI (.ci/fuzz)
/// checks every answer against it.
enum OpenAPIDocument {
    /// The document as served: `source` with the limits of `InputLimits` filled in and, on every
    /// operation, each error status the server can answer for it (by rule: who may call it, what it reads).
    static let json: String = {
        guard case .object(var document) = try! APIJSON.decode(JSONValue.self, from: Data(source.utf8)),
              case .object(var paths) = document["paths"] else { fatalError("the OpenAPI source is not an object with paths") }
        for (path, item) in paths {
            guard case .object(var operations) = item else { continue }
            for (method, operation) in operations {
                guard case .object(var fields) = operation, case .object(var responses) = fields["responses"] else { continue }
                var statuses: [Int] = []
                let open = fields["security"] == .array([])
                if !open { statuses += [401, 403] }
                if path != "/healthz" && path != "/openapi.json" { statuses.append(503) }
                if path.contains("{") { statuses.append(404) }
                if fields["requestBody"] != nil { statuses += [400, 413, 415, 422] }
                if case .array(let parameters) = fields["parameters"],
                   parameters.contains(where: { $0["in"] == "query" || $0["in"] == "header" }) {
                    statuses += [400, 422]
                }
                for status in statuses where responses[String(status)] == nil {
                    responses[String(status)] = ["$ref": "#/components/responses/Error"]
                }
                fields["responses"] = .object(responses)
                if let body = fields["requestBody"] { fields["requestBody"] = nullableOptionals(body) }
                operations[method] = .object(fields)
            }
            paths[path] = .object(operations)
        }
        document["paths"] = .object(paths)
        if case .object(var components) = document["components"], case .object(var schemas) = components["schemas"] {
            // A batch item is a submission with its own idempotency key: one flat schema (the fuzzer read an
            // allOf of the two as forbidding what the second member allows).
            if case .object(var item)? = schemas["TaskSubmission"], case .object(var properties)? = item["properties"] {
                properties["idempotency_key"] = schemas["IdempotencyKey"]
                item["properties"] = .object(properties)
                schemas["BatchTaskSubmission"] = .object(item)
            }
            for name in ["TaskSubmission", "BatchTaskSubmission", "StateReport", "ParticipantOutcome", "Progress"] {
                schemas[name] = schemas[name].map(nullableOptionals)
            }
            components["schemas"] = .object(schemas)
            components["requestBodies"] = components["requestBodies"].map(nullableOptionals)
            document["components"] = .object(components)
        }
        var text = String(decoding: try! APIJSON.encode(JSONValue.object(document)), as: UTF8.self)
        let limits = InputLimits.default
        for (placeholder, value) in [
            ("\"@error_length\"", limits.errorLength), ("\"@reason_length\"", limits.reasonLength),
            ("\"@name_length\"", limits.nameLength),
        ] {
            text = text.replacingOccurrences(of: placeholder, with: String(value))
        }
        func escaped(_ pattern: String) -> String { "^" + pattern.replacingOccurrences(of: "\\", with: "\\\\") + "$" }
        return text.replacingOccurrences(of: "@endpoint_pattern", with: escaped(NodeEndpoint.patternText))
            .replacingOccurrences(of: "@webhook_url_pattern", with: escaped(WebhookURL.patternText))
    }()

    /// The server reads an optional field given as null as if it were absent; request schemas say so.
    private static func nullableOptionals(_ schema: JSONValue) -> JSONValue {
        switch schema {
        case .array(let items):
            return .array(items.map(nullableOptionals))
        case .object(var fields):
            for (key, value) in fields where key != "properties" && key != "example" {
                fields[key] = nullableOptionals(value)
            }
            if case .object(var properties) = fields["properties"] {
                var required: Set<JSONValue> = []
                if case .array(let names) = fields["required"] { required = Set(names) }
                for (name, property) in properties {
                    let inner = nullableOptionals(property)
                    properties[name] = required.contains(.string(name)) ? inner : ["anyOf": [inner, ["type": "null"]]]
                }
                fields["properties"] = .object(properties)
            }
            return .object(fields)
        default:
            return schema
        }
    }

    static let source = #"""
    {
      "openapi": "3.1.0",
      "info": {
        "title": "Taskyard HTTP API",
        "version": "1",
        "description": "Task queue for clusters: clients submit tasks, node agents poll, fan out and report. The prose contract is docs/API.md."
      },
      "security": [{"bearer": []}],
      "paths": {
        "/healthz": {"get": {"summary": "The process is up", "security": [], "responses": {"200": {"description": "status, and whether this replica runs maintenance"}}}},
        "/readyz": {"get": {"summary": "The database is reachable and migrated", "security": [], "responses": {"200": {"description": "ready"}, "503": {"$ref": "#/components/responses/Error"}}}},
        "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        "/ui": {"get": {"summary": "The dashboard (a page that asks for a token, then calls this API)", "security": [], "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/ui/app.js": {"get": {"summary": "The dashboard's script", "security": [], "responses": {"200": {"description": "JavaScript", "content": {"text/javascript": {"schema": {"type": "string"}}}}}}},
        "/ui/app.css": {"get": {"summary": "The dashboard's styles", "security": [], "responses": {"200": {"description": "CSS", "content": {"text/css": {"schema": {"type": "string"}}}}}}},
        "/api/v1/clusters/{cluster_id}/changes": {"get": {"summary": "Server-sent events: a `change` event (id: its position; data: the task id and its event) for each transition of the cluster's tasks, resumable with Last-Event-ID, and `work` (data: node) and `finished` (data: task_id) hints",
          "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"name": "timeout", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 86400}, "description": "end the stream after this many seconds (default: when the client goes)"},
                         {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string", "pattern": "^[0-9]{1,19}-[0-9]{1,18}$"}, "description": "the id of the last change event received: every change after it comes first"}],
          "responses": {"200": {"description": "text/event-stream: each event as a fuzzer reads it", "content": {"text/event-stream": {"schema": {"type": "object", "properties": {"id": {"type": "string"}, "event": {"enum": ["change", "work", "finished"]}, "data": {"type": "string"}}}}}}, "400": {"$ref": "#/components/responses/Error"}, "429": {"$ref": "#/components/responses/Error"}}}},
        "/api/v1/clusters/{cluster_id}/stats": {"get": {"summary": "The charts' series (read): per step of a window back from now, tasks finished by state, the most queued and received at one sample, and p50/p99 pick-up and run times; of the whole cluster, one task type or one initiating node",
          "parameters": [{"$ref": "#/components/parameters/cluster_id"},
                         {"name": "window", "in": "query", "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,7}[smhd]$"}, "description": "how far back, 1m to 7d (default 1h)"},
                         {"name": "step", "in": "query", "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,7}[smhd]$"}, "description": "whole minutes, at most 1440 points a window (default: 1m for 1h, 10m for 24h, 1h for 7d)"},
                         {"name": "type", "in": "query", "schema": {"type": "string", "minLength": 1}, "description": "one task type's share"},
                         {"name": "node", "in": "query", "schema": {"type": "string", "minLength": 1}, "description": "the tasks one node initiates (not with type)"}],
          "responses": {"200": {"description": "the series, oldest point first", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StatsSeries"}}}}, "400": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics (read; a token bound to a cluster sees that cluster's series)", "responses": {"200": {"description": "Prometheus text exposition format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/api/v1/tokens": {
          "post": {"summary": "Make a token (admin); the secret is in this answer only",
                   "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": [
                     {"type": "object", "required": ["kind", "name", "scopes"], "properties": {
                       "kind": {"const": "client"}, "name": {"$ref": "#/components/schemas/TokenName"},
                       "scopes": {"type": "array", "minItems": 1, "uniqueItems": true, "items": {"type": "string", "enum": ["read", "submit", "operate", "admin"]}},
                       "cluster_id": {"$ref": "#/components/schemas/Identifier"}, "node_id": false,
                       "expires_at": {"type": "string", "format": "date-time", "description": "in the future"}}},
                     {"type": "object", "required": ["kind", "name", "cluster_id", "node_id"], "properties": {
                       "kind": {"const": "node"}, "name": {"$ref": "#/components/schemas/TokenName"}, "scopes": {"type": "array", "maxItems": 0},
                       "cluster_id": {"$ref": "#/components/schemas/Identifier"}, "node_id": {"$ref": "#/components/schemas/Identifier"},
                       "expires_at": {"type": "string", "format": "date-time", "description": "in the future"}}}]}}}},
                   "responses": {"201": {"description": "the token, with its secret in token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Token"}}}}, "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}},
          "get": {"summary": "List tokens (admin), never their secrets", "responses": {"200": {"description": "{\"tokens\": [...]}"}, "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/tokens/{token_id}": {
          "delete": {"summary": "Revoke a token (admin)", "parameters": [{"name": "token_id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1, "maximum": 9223372036854775807}}],
                     "responses": {"204": {"description": "revoked"}, "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/signing-keys": {
          "get": {"summary": "The public keys participants verify grants with (node or read tokens)", "parameters": [{"$ref": "#/components/parameters/cluster_id"}],
                  "responses": {"200": {"description": "{\"keys\": [{\"id\", \"algorithm\": \"ed25519\", \"public_key\": base64}]}"}, "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}},
          "post": {"summary": "Rotate: a new key that signs from now on (admin)", "parameters": [{"$ref": "#/components/parameters/cluster_id"}],
                   "responses": {"201": {"description": "{\"id\", \"algorithm\": \"ed25519\", \"public_key\": base64}"}, "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/signing-keys/{key_id}": {
          "delete": {"summary": "Retire a key: its grants are refused once agents re-read the keys (admin)",
                     "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"name": "key_id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}}],
                     "responses": {"204": {"description": "retired"}, "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters": {
          "post": {"summary": "Create a cluster", "requestBody": {"$ref": "#/components/requestBodies/Cluster"},
                   "responses": {"201": {"description": "the cluster", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Cluster"}}}}, "409": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}},
          "get": {"summary": "List clusters", "responses": {"200": {"description": "{\"clusters\": [...]}"}}}
        },
        "/api/v1/clusters/{cluster_id}/schedules": {
          "post": {"summary": "Make a schedule (operate): its task request is submitted at every slot of its cron expression", "parameters": [{"$ref": "#/components/parameters/cluster_id"}],
                   "requestBody": {"$ref": "#/components/requestBodies/ScheduleCreate"},
                   "responses": {"201": {"$ref": "#/components/responses/Schedule"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}},
          "get": {"summary": "The cluster's schedules, by id", "parameters": [{"$ref": "#/components/parameters/cluster_id"}],
                  "responses": {"200": {"description": "{\"schedules\": [...]}", "content": {"application/json": {"schema": {"type": "object", "properties": {"schedules": {"type": "array", "items": {"$ref": "#/components/schemas/Schedule"}}}}}}}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/schedules/{schedule_id}": {
          "get": {"summary": "A schedule", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/schedule_id"}],
                  "responses": {"200": {"$ref": "#/components/responses/Schedule"}, "404": {"$ref": "#/components/responses/Error"}}},
          "put": {"summary": "Replace what a schedule says (operate); it next runs at its first slot from now", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/schedule_id"}],
                  "requestBody": {"$ref": "#/components/requestBodies/ScheduleReplace"},
                  "responses": {"200": {"$ref": "#/components/responses/Schedule"}, "404": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}},
          "delete": {"summary": "Delete a schedule (operate); the tasks it submitted stay", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/schedule_id"}],
                     "responses": {"204": {"description": "deleted"}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/schedules/{schedule_id}/pause": {
          "post": {"summary": "Pause a schedule (operate): no slot is submitted until it is resumed", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/schedule_id"}],
                   "responses": {"200": {"$ref": "#/components/responses/Schedule"}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/schedules/{schedule_id}/resume": {
          "post": {"summary": "Resume a schedule (operate) from its first slot after now (the slots it missed while paused are not caught up)", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/schedule_id"}],
                   "responses": {"200": {"$ref": "#/components/responses/Schedule"}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/webhooks": {
          "post": {"summary": "Subscribe a URL to the cluster's transitions (admin): signed deliveries, retried for a day; the secret is in this answer only", "parameters": [{"$ref": "#/components/parameters/cluster_id"}],
                   "requestBody": {"$ref": "#/components/requestBodies/WebhookCreate"},
                   "responses": {"201": {"$ref": "#/components/responses/Webhook"}, "404": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}},
          "get": {"summary": "The cluster's webhook subscriptions (admin), without their secrets", "parameters": [{"$ref": "#/components/parameters/cluster_id"}],
                  "responses": {"200": {"description": "{\"webhooks\": [...]}", "content": {"application/json": {"schema": {"type": "object", "properties": {"webhooks": {"type": "array", "items": {"$ref": "#/components/schemas/Webhook"}}}}}}}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/webhooks/{webhook_id}": {
          "get": {"summary": "A webhook subscription (admin)", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/webhook_id"}],
                  "responses": {"200": {"$ref": "#/components/responses/Webhook"}, "404": {"$ref": "#/components/responses/Error"}}},
          "delete": {"summary": "Delete a webhook subscription and its delivery log (admin)", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/webhook_id"}],
                     "responses": {"204": {"description": "deleted"}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/webhooks/{webhook_id}/deliveries": {
          "get": {"summary": "A subscription's delivery log, newest first (admin)", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/webhook_id"},
                    {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["pending", "delivered", "failed"]}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 9223372036854775807}, "description": "the next of the page before"}],
                  "responses": {"200": {"description": "{\"deliveries\": [...], \"next\": id|null}", "content": {"application/json": {"schema": {"type": "object", "required": ["deliveries", "next"], "properties": {"deliveries": {"type": "array", "items": {"$ref": "#/components/schemas/Delivery"}}, "next": {"type": ["integer", "null"]}}}}}},
                                "400": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/resend": {
          "post": {"summary": "Send a delivery again now, with a day of attempts from now (admin)", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/webhook_id"}, {"$ref": "#/components/parameters/delivery_id"}],
                   "responses": {"202": {"description": "the delivery, pending again", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Delivery"}}}}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/nodes/{node_id}": {
          "put": {"summary": "Register a node (agents; idempotent)", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/node_id"}],
                  "requestBody": {"$ref": "#/components/requestBodies/NodeRegistration"},
                  "responses": {"200": {"description": "the node", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}}, "404": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/nodes": {
          "get": {"summary": "List a cluster's nodes", "parameters": [{"$ref": "#/components/parameters/cluster_id"}],
                  "responses": {"200": {"description": "{\"nodes\": [...]}"}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/tasks": {
          "post": {"summary": "Submit a task (written as queued)",
                   "parameters": [{"$ref": "#/components/parameters/cluster_id"},
                                  {"name": "Idempotency-Key", "in": "header", "schema": {"$ref": "#/components/schemas/IdempotencyKeyHeader"}, "description": "the same key with another request: 422 idempotency_key_reused"},
                                  {"name": "X-Opaque-Id", "in": "header", "schema": {"$ref": "#/components/schemas/OpaqueIDHeader"}},
                                  {"$ref": "#/components/parameters/traceparent"}],
                   "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TaskSubmission"}}}},
                   "responses": {"201": {"$ref": "#/components/responses/Task"}, "200": {"$ref": "#/components/responses/Task"}, "404": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}},
          "get": {"summary": "List tasks, oldest first",
                  "parameters": [{"$ref": "#/components/parameters/cluster_id"},
                                 {"name": "state", "in": "query", "schema": {"type": "string", "pattern": "^(queued|received|completed|failed|cancelled)(,(queued|received|completed|failed|cancelled))*$"}, "description": "comma-separated states"},
                                 {"name": "type", "in": "query", "schema": {"type": "string", "minLength": 1, "pattern": "^[^\\u0000]*$"}},
                                 {"name": "node", "in": "query", "schema": {"type": "string", "minLength": 1, "pattern": "^[^\\u0000]*$"}},
                                 {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                                 {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                                 {"name": "parent_id", "in": "query", "schema": {"type": "string", "pattern": "^(none|[1-9][0-9]{0,17})$"}, "description": "a task id, or none for roots only"},
                                 {"name": "opaque_id", "in": "query", "schema": {"$ref": "#/components/schemas/OpaqueID"}},
                                 {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                                 {"name": "after", "in": "query", "schema": {"type": "string", "pattern": "^(-?[0-9]{1,16}\\.)?[1-9][0-9]{0,17}$"}, "description": "the cursor of the last page (opaque: give back the next of the page before)"}],
                  "responses": {"200": {"description": "{\"tasks\": [...], \"next\": cursor or null}; a page also ends early, with a cursor, past page_bytes of payloads and results"}, "400": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/tasks/batch": {
          "post": {"summary": "Submit up to 1000 tasks, all or nothing", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"name": "X-Opaque-Id", "in": "header", "schema": {"$ref": "#/components/schemas/OpaqueIDHeader"}}, {"$ref": "#/components/parameters/traceparent"}],
                   "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["tasks"], "properties": {"tasks": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"$ref": "#/components/schemas/BatchTaskSubmission"}}}}}}},
                   "responses": {"201": {"description": "{\"tasks\": [...]}"}, "200": {"description": "every item's idempotency key matched an earlier request: nothing created"}, "404": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/tasks/{task_id}": {
          "get": {"summary": "A task with summaries of its children", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/task_id"}],
                  "responses": {"200": {"$ref": "#/components/responses/Task"}, "404": {"$ref": "#/components/responses/Error"}}},
          "delete": {"summary": "Delete a finished task, its descendants and their events", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/task_id"}],
                     "responses": {"204": {"description": "deleted"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/tasks/{task_id}/participants": {
          "get": {"summary": "Every attempt's participant outcomes (or one attempt's), oldest attempt first", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/task_id"},
                                 {"name": "attempt", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 2147483647}}],
                  "responses": {"200": {"description": "the outcomes", "content": {"application/json": {"schema": {"type": "object", "required": ["participants"], "properties": {"participants": {"type": "array", "items": {"$ref": "#/components/schemas/Participant"}}}}}}},
                                "400": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/tasks/{task_id}/events": {
          "get": {"summary": "The task's history, a page at a time", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/task_id"},
                                 {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1000}},
                                 {"name": "after", "in": "query", "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}, "description": "the cursor of the last page"}],
                  "responses": {"200": {"description": "{\"events\": [{\"at\", \"from\", \"to\", \"node\", \"attempt\", \"detail\"}], \"next\": cursor or null}"}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/tasks/{task_id}/tree": {
          "get": {"summary": "The task and all its descendants, breadth first, a page at a time", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/task_id"},
                                 {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1000}},
                                 {"name": "after", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]{1,9}\\.[1-9][0-9]{0,17}$"}, "description": "the cursor of the last page"}],
                  "responses": {"200": {"description": "{\"tasks\": [...], \"next\": cursor or null}; a page also ends early past page_bytes"}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/tasks/{task_id}/wait": {
          "get": {"summary": "Wait for the task to finish", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/task_id"},
                                                                        {"name": "timeout", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 300, "default": 30}}],
                  "responses": {"200": {"$ref": "#/components/responses/Task"}, "408": {"$ref": "#/components/responses/Task"}, "404": {"$ref": "#/components/responses/Error"}, "429": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/tasks/{task_id}/cancel": {
          "post": {"summary": "Cancel the task and its descendants", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/task_id"}],
                   "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"reason": {"type": "string", "maxLength": "@reason_length", "pattern": "^[^\\u0000]*$"}}}}}},
                   "responses": {"200": {"$ref": "#/components/responses/Task"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/clusters/{cluster_id}/tasks/{task_id}/retry": {
          "post": {"summary": "Queue a failed or cancelled task again with a fresh attempt budget", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/task_id"}],
                   "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"participants": {"type": "string", "enum": ["failed", "all"]}}}}}},
                   "responses": {"200": {"$ref": "#/components/responses/Task"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/tasks/{cluster_id}/{node_id}": {
          "get": {"summary": "Poll: claim up to limit of the node's tasks, waiting up to wait seconds for one; also the node's heartbeat",
                  "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/node_id"},
                                 {"name": "wait", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 60, "default": 0}},
                                 {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 16}}],
                  "responses": {"200": {"description": "{\"tasks\": [...], \"cancel\": [ids]}: each claimed task with its lease and grants, one per participant, and attempt_traceparent (the claim's span) when the server traces"}, "404": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/tasks/{cluster_id}/{node_id}/heartbeat": {
          "post": {"summary": "Renew the leases of the tasks the node holds", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/node_id"}],
                   "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["tasks"], "properties": {"tasks": {"type": "array", "items": {"type": "object", "required": ["id", "attempt", "lease"], "properties": {"id": {"$ref": "#/components/schemas/TaskID"}, "attempt": {"$ref": "#/components/schemas/Attempt"}, "lease": {"$ref": "#/components/schemas/Lease"}, "progress": {"$ref": "#/components/schemas/Progress"}}}}}}}}},
                   "responses": {"200": {"description": "{\"cancel\": [ids], \"lost\": [ids]}"}, "404": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/tasks/{cluster_id}/{node_id}/{task_id}/state": {
          "post": {"summary": "Report a task's outcome", "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/node_id"}, {"$ref": "#/components/parameters/task_id"}],
                   "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StateReport"}}}},
                   "responses": {"200": {"$ref": "#/components/responses/Task"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/tasks/{cluster_id}/{node_id}/scrape-check": {
          "post": {"summary": "Whether the token with this SHA-256 may read the node's cluster: how an agent judges a scrape of its /metrics without sending the scraper's secret on",
                   "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/node_id"}],
                   "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["token_sha256"], "properties": {"token_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}}}}},
                   "responses": {"200": {"description": "{\"status\": 200|401|403}: what the server would answer that token on a read route of the cluster", "content": {"application/json": {"schema": {"type": "object", "required": ["status"], "properties": {"status": {"type": "integer", "enum": [200, 401, 403]}}}}}},
                                 "404": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/tasks/{cluster_id}/{node_id}/{task_id}/rollback-grants": {
          "post": {"summary": "Rollback grants for participants of an attempt the node holds; the attempt can then only be reported failed or cancelled",
                   "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/node_id"}, {"$ref": "#/components/parameters/task_id"}],
                   "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["attempt", "lease", "nodes"], "properties": {"attempt": {"$ref": "#/components/schemas/Attempt"}, "lease": {"$ref": "#/components/schemas/Lease"}, "nodes": {"type": "array", "minItems": 1, "maxItems": 256, "uniqueItems": true, "items": {"$ref": "#/components/schemas/Identifier"}}}}}}},
                   "responses": {"200": {"description": "a rollback grant per node", "content": {"application/json": {"schema": {"type": "object", "required": ["grants"], "properties": {"grants": {"type": "object", "additionalProperties": {"type": "string"}}}}}}},
                                 "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}}
        },
        "/api/v1/tasks/{cluster_id}/{node_id}/states": {
          "post": {"summary": "Report many tasks' outcomes in one statement; each report stands alone (added by issue 7)",
                   "parameters": [{"$ref": "#/components/parameters/cluster_id"}, {"$ref": "#/components/parameters/node_id"}],
                   "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["reports"], "properties": {"reports": {"type": "array", "minItems": 1, "minItems": 1, "maxItems": 1000, "items": {"allOf": [{"$ref": "#/components/schemas/StateReport"}, {"type": "object", "required": ["task_id"], "properties": {"task_id": {"$ref": "#/components/schemas/TaskID"}}}]}}}}}}},
                   "responses": {"200": {"description": "one result per report, in order", "content": {"application/json": {"schema": {"type": "object", "properties": {"results": {"type": "array", "items": {"type": "object", "required": ["task_id", "status"], "properties": {"task_id": {"type": "integer"}, "status": {"type": "integer", "description": "what the single-task route would answer"}, "state": {"$ref": "#/components/schemas/TaskState"}, "error": {"$ref": "#/components/schemas/ErrorDetail"}}}}}}}}},
                                 "422": {"$ref": "#/components/responses/Error"}}}
        }
      },
      "components": {
        "parameters": {
          "cluster_id": {"name": "cluster_id", "in": "path", "required": true, "schema": {"$ref": "#/components/schemas/Identifier"}},
          "node_id": {"name": "node_id", "in": "path", "required": true, "schema": {"$ref": "#/components/schemas/Identifier"}},
          "task_id": {"name": "task_id", "in": "path", "required": true, "schema": {"$ref": "#/components/schemas/TaskID"}},
          "schedule_id": {"name": "schedule_id", "in": "path", "required": true, "schema": {"$ref": "#/components/schemas/Identifier"}},
          "webhook_id": {"name": "webhook_id", "in": "path", "required": true, "schema": {"$ref": "#/components/schemas/TaskID"}},
          "delivery_id": {"name": "delivery_id", "in": "path", "required": true, "schema": {"$ref": "#/components/schemas/TaskID"}},
          "traceparent": {"name": "traceparent", "in": "header", "schema": {"type": "string", "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$"},
                          "description": "W3C trace context: kept with the task, sent on to its participant calls and handlers (TRACEPARENT); 422 when malformed"}
        },
        "requestBodies": {
          "ScheduleCreate": {"required": true, "content": {"application/json": {"schema": {"allOf": [{"$ref": "#/components/schemas/ScheduleBody"},
            {"type": "object", "required": ["id"], "properties": {"id": {"$ref": "#/components/schemas/Identifier"}}}]}}}},
          "WebhookCreate": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["url", "events"], "properties": {
            "url": {"type": "string", "maxLength": 2000, "pattern": "@webhook_url_pattern", "description": "a node endpoint's rules plus a path: no user info, query or fragment"},
            "events": {"type": "array", "minItems": 1, "maxItems": 64, "items": {"type": "string", "enum": ["task.queued", "task.received", "task.completed", "task.failed", "task.cancelled"]}},
            "types": {"type": "array", "minItems": 1, "maxItems": 64, "items": {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"}, "description": "only tasks of these types (left out: every type)"}}}}}},
          "ScheduleReplace": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScheduleBody"}}}},
          "Cluster": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["id"], "properties": {"id": {"$ref": "#/components/schemas/Identifier"}, "name": {"type": "string", "minLength": 1, "maxLength": "@name_length", "pattern": "^[^\\u0000]*$"}}}}}},
          "NodeRegistration": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["endpoint"], "properties": {"endpoint": {"type": "string", "pattern": "@endpoint_pattern"}, "labels": {"type": "object", "description": "at most labels_bytes as JSON, json_depth deep, no NUL"}, "capacity": {"type": "integer", "minimum": 1, "maximum": 2147483647}}}}}}
        },
        "responses": {
          "Webhook": {"description": "the subscription", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Webhook"}}}},
          "Schedule": {"description": "the schedule", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Schedule"}}}},
          "Task": {"description": "a task", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Task"}}}},
          "Error": {"description": "an error", "content": {"application/json": {"schema": {"type": "object", "required": ["error"], "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}}}}}}
        },
        "securitySchemes": {
          "bearer": {"type": "http", "scheme": "bearer", "description": "a client or node token (docs/API.md, Credentials and permissions)"}
        },
        "schemas": {
          "Token": {"type": "object", "properties": {"id": {"type": "integer"}, "kind": {"type": "string"}, "name": {"type": "string"}, "scopes": {"type": "array", "items": {"type": "string"}},
            "cluster_id": {"type": ["string", "null"]}, "node_id": {"type": ["string", "null"]}, "created_at": {"type": "string", "format": "date-time"},
            "expires_at": {"type": ["string", "null"], "format": "date-time"}, "last_used_at": {"type": ["string", "null"], "format": "date-time"},
            "revoked_at": {"type": ["string", "null"], "format": "date-time"}, "token": {"type": "string"}}},
          "Identifier": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
          "ScheduleBody": {"type": "object", "required": ["cron", "task"], "description": "a schedule's request body; on PUT without its id (one given must be the path's)", "properties": {
            "cron": {"type": "string", "pattern": "^((\\*|[1-5]?[0-9]) (\\*|1?[0-9]|2[0-3]) (\\*|[1-9]|1[0-9]|2[0-8]) (\\*|[1-9]|1[0-2]) (\\*|[0-7])|@(hourly|daily|midnight|weekly|monthly|yearly|annually)|@every [1-9][0-9]?[sm])$",
                     "description": "five-field cron (minute hour day-of-month month day-of-week: lists, ranges, steps, month and day names), an @hourly-style alias, or @every <duration> (1s–168h, such as 30s or 1h30m); this pattern is a subset of what is accepted"},
            "timezone": {"type": "string", "enum": ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"], "description": "any IANA time zone name (default UTC); wall-clock slots a daylight saving change skips are skipped, doubled ones run once"},
            "task": {"$ref": "#/components/schemas/TaskSubmission"},
            "catch_up": {"type": "string", "enum": ["skip", "one", "all"], "description": "slots missed while no leader ran: skip them (default; a slot runs up to a minute late), submit the latest one, or all"},
            "paused": {"type": "boolean"}}},
          "StatsSeries": {"type": "object", "required": ["cluster_id", "type", "node", "window_seconds", "step_seconds", "points"], "properties": {
            "cluster_id": {"type": "string"}, "type": {"type": ["string", "null"]}, "node": {"type": ["string", "null"]},
            "window_seconds": {"type": "integer"}, "step_seconds": {"type": "integer"},
            "points": {"type": "array", "items": {"type": "object", "required": ["at", "completed", "failed", "cancelled", "queued", "received", "pickup_p50_ms", "pickup_p99_ms", "run_p50_ms", "run_p99_ms"], "properties": {
              "at": {"type": "string", "format": "date-time", "description": "the step's start"},
              "completed": {"type": "integer", "minimum": 0}, "failed": {"type": "integer", "minimum": 0}, "cancelled": {"type": "integer", "minimum": 0},
              "queued": {"type": "integer", "minimum": 0}, "received": {"type": "integer", "minimum": 0},
              "pickup_p50_ms": {"type": ["number", "null"]}, "pickup_p99_ms": {"type": ["number", "null"]},
              "run_p50_ms": {"type": ["number", "null"]}, "run_p99_ms": {"type": ["number", "null"]}}}}}},
          "Schedule": {"type": "object", "properties": {
            "id": {"type": "string"}, "cluster_id": {"type": "string"}, "cron": {"type": "string"}, "timezone": {"type": "string"},
            "task": {"type": "object", "description": "the task request, as given"}, "catch_up": {"type": "string", "enum": ["skip", "one", "all"]}, "paused": {"type": "boolean"},
            "next_run_at": {"type": ["string", "null"], "format": "date-time", "description": "the next slot to submit"}, "last_run_at": {"type": ["string", "null"], "format": "date-time"},
            "last_task_id": {"type": ["integer", "null"]}, "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"}}},
          "Webhook": {"type": "object", "properties": {
            "id": {"type": "integer"}, "cluster_id": {"type": "string"}, "url": {"type": "string"}, "events": {"type": "array", "items": {"type": "string"}},
            "types": {"type": ["array", "null"], "items": {"type": "string"}}, "created_at": {"type": "string", "format": "date-time"},
            "secret": {"type": "string", "pattern": "^whsec_", "description": "in the answer to the POST only: the Standard Webhooks signing secret"}}},
          "Delivery": {"type": "object", "properties": {
            "id": {"type": "integer"}, "webhook_id": {"type": "integer"}, "event": {"type": "string"}, "event_id": {"type": "string", "description": "the change stream's id of the change"},
            "task_id": {"type": "integer"}, "status": {"type": "string", "enum": ["pending", "delivered", "failed"]}, "attempts": {"type": "integer"},
            "last_status_code": {"type": ["integer", "null"]}, "last_error": {"type": ["string", "null"]}, "last_attempt_at": {"type": ["string", "null"], "format": "date-time"},
            "next_attempt_at": {"type": ["string", "null"], "format": "date-time"}, "give_up_at": {"type": "string", "format": "date-time"},
            "delivered_at": {"type": ["string", "null"], "format": "date-time"}, "created_at": {"type": "string", "format": "date-time"}}},
          "TokenName": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^\\u0000-\\u001f\\u007f]*$"},
          "OpaqueID": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[^\\u0000 \\t]([^\\u0000]*[^\\u0000 \\t])?$", "description": "no NUL, and no space or tab at either end (HTTP trims them from headers)"},
          "OpaqueIDHeader": {"type": "string", "description": "as OpaqueID: 1–1024 characters, no NUL (422 otherwise); empty is none; HTTP trims spaces and tabs around a header value, so the limits apply to what arrives"},
          "IdempotencyKeyHeader": {"type": "string", "description": "as IdempotencyKey: 1–255 characters, no NUL (422 otherwise); empty is none; HTTP trims spaces and tabs around a header value, so the limits apply to what arrives"},
          "IdempotencyKey": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^\\u0000 \\t]([^\\u0000]*[^\\u0000 \\t])?$", "description": "no NUL, and no space or tab at either end (HTTP trims them from headers)"},
          "Attempt": {"type": "integer", "minimum": 1, "maximum": 2147483647},
          "TaskID": {"type": "integer", "minimum": 1, "maximum": 9223372036854775807},
          "Lease": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[^\\u0000]*$", "description": "what the claim returned"},
          "ErrorText": {"type": "string", "maxLength": "@error_length", "pattern": "^[^\\u0000]*$"},
          "TaskState": {"type": "string", "enum": ["queued", "received", "completed", "failed", "cancelled"]},
          "ErrorDetail": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}},
          "Progress": {"type": "object", "required": ["completed"], "description": "a progress that makes no sense (negative or not finite, units past 64 characters) is dropped and its task's lease renewed all the same; a NUL is refused (422)", "properties": {"completed": {"type": "number"}, "total": {"type": "number"}, "units": {"type": "string", "pattern": "^[^\\u0000]*$"}}},
          "Cluster": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"}}},
          "Node": {"type": "object", "properties": {"id": {"type": "string"}, "cluster_id": {"type": "string"}, "endpoint": {"type": "string"}, "status": {"type": "string", "enum": ["online", "offline"]}, "last_seen_at": {"type": "string", "format": "date-time"}, "capacity": {"type": "integer"}, "held_tasks": {"type": "integer"}, "in_use": {"type": "integer", "description": "received tasks the node takes part in now, as initiator or participant (at most capacity)"}, "labels": {"type": "object"}}},
          "TaskSubmission": {"type": "object", "required": ["type", "participating_nodes"], "properties": {
            "type": {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"}, "participating_nodes": {"type": "array", "minItems": 1, "maxItems": 256, "uniqueItems": true, "items": {"$ref": "#/components/schemas/Identifier"}, "description": "registered nodes of the cluster (else 422 unknown_node)"},
            "payload": {"type": "object", "description": "at most payload_bytes as JSON, json_depth deep, no NUL in any string or key"}, "priority": {"type": "integer", "minimum": -2147483648, "maximum": 2147483647}, "run_after": {"type": "string", "format": "date-time"},
            "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100}, "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 604800}, "ordering_key": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^\\u0000]*$"},
            "assign": {"type": "string", "enum": ["first", "least_loaded"]}, "affinity": {"type": "string", "enum": ["any", "strict"]},
            "parent_id": {"type": "integer", "minimum": 1, "maximum": 9223372036854775807, "description": "a queued or received task of the cluster (else 422 invalid_parent)"}, "abortable": {"type": "boolean"}, "internal": {"type": "boolean"},
            "complete_when": {"anyOf": [{"type": "string", "enum": ["all", "any", "quorum"]}, {"type": "object", "required": ["at_least"], "additionalProperties": false, "properties": {"at_least": {"type": "integer", "minimum": 1, "maximum": 256}}}], "description": "when the fan-out counts as done (default all); at_least at most the number of participating nodes (else 422)"},
            "concurrency_key": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^\\u0000]*$", "description": "at most concurrency_limit received tasks of this key in the cluster at once"},
            "concurrency_limit": {"type": "integer", "minimum": 1, "maximum": 1000000, "description": "default 1; only with concurrency_key (else 422)"},
            "on_limit": {"type": "string", "enum": ["queue", "cancel_newest", "cancel_in_progress"], "description": "a task arriving when its key is full: waits (default), is cancelled, or has the oldest cancelled; only with concurrency_key"},
            "on_offline": {"type": "string", "enum": ["wait", "fail"], "description": "while a node it runs on is offline: wait (default) or fail at once"},
            "on_finish": {"type": "object", "required": ["type", "node"], "additionalProperties": false,
                          "properties": {"type": {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"}, "node": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$", "description": "a node registered in the cluster (else 422)"}},
                          "description": "a follow-up task of this type on this node, submitted in the transaction that finishes this one, its payload {task_id, type, state, result, error, payload}"}}},
          "Task": {"type": "object", "properties": {
            "id": {"type": "integer"}, "cluster_id": {"type": "string"}, "type": {"type": "string"}, "state": {"$ref": "#/components/schemas/TaskState"},
            "payload": {}, "assigned_node": {"type": "string"}, "participating_nodes": {"type": "array", "items": {"type": "string"}},
            "parent_id": {"type": ["integer", "null"]}, "attempt": {"type": "integer"}, "max_attempts": {"type": "integer"}, "priority": {"type": "integer"},
            "run_after": {"type": ["string", "null"], "format": "date-time"}, "timeout_seconds": {"type": ["integer", "null"]}, "lease_expires_at": {"type": ["string", "null"], "format": "date-time"},
            "ordering_key": {"type": ["string", "null"]}, "idempotency_key": {"type": ["string", "null"]}, "opaque_id": {"type": ["string", "null"]},
            "traceparent": {"type": ["string", "null"]},
            "result": {}, "error": {"type": ["string", "null"]}, "cancel_requested": {"type": "boolean"}, "abortable": {"type": "boolean"}, "internal": {"type": "boolean"},
            "progress": {}, "complete_when": {"anyOf": [{"type": "string", "enum": ["all", "any", "quorum"]}, {"type": "object", "properties": {"at_least": {"type": "integer"}}}]},
            "concurrency_key": {"type": ["string", "null"]}, "concurrency_limit": {"type": ["integer", "null"]}, "waiting_for": {"type": ["array", "null"], "items": {"type": "string"}},
            "schedule_id": {"type": ["string", "null"]}, "schedule_slot": {"type": ["string", "null"], "format": "date-time", "description": "the slot of its schedule it was submitted for"},
            "on_finish": {"type": ["object", "null"], "properties": {"type": {"type": "string"}, "node": {"type": "string"}}}, "follow_up_id": {"type": ["integer", "null"], "description": "the task on_finish submitted when this one last finished"},
            "participants": {"type": "array", "items": {"$ref": "#/components/schemas/Participant"}, "description": "one per participating node, its latest outcome"},
            "created_at": {"type": "string", "format": "date-time"}, "received_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"},
            "children": {"type": "array", "items": {"type": "object"}, "description": "in GET …/tasks/{task_id} only: sub-tasks"}}},
          "Participant": {"type": "object", "required": ["node", "attempt", "state", "result", "error", "started_at", "finished_at", "rollback", "decided"], "properties": {
              "node": {"type": "string"}, "attempt": {"type": "integer"}, "state": {"type": "string", "enum": ["pending", "running", "completed", "failed", "cancelled"]},
              "result": {}, "error": {"type": ["string", "null"]}, "started_at": {"type": ["string", "null"], "format": "date-time"}, "finished_at": {"type": ["string", "null"], "format": "date-time"},
              "rollback": {"anyOf": [{"type": "null"}, {"type": "object", "required": ["state"], "properties": {"state": {"type": "string", "enum": ["completed", "failed"]}, "result": {}, "error": {"type": "string"}}}]},
              "decided": {"type": "boolean"}}},
          "ReportTraceparent": {"type": "string", "description": "the agent's span for this report (W3C traceparent), when it traces: the server's report span is its child; ignored when malformed or when the server does not trace"},
          "StateReport": {"anyOf": [
            {"type": "object", "required": ["attempt", "lease", "state"], "properties": {
              "attempt": {"$ref": "#/components/schemas/Attempt"}, "lease": {"$ref": "#/components/schemas/Lease"}, "state": {"type": "string", "enum": ["failed", "cancelled"]},
              "result": {}, "error": {"$ref": "#/components/schemas/ErrorText"}, "traceparent": {"$ref": "#/components/schemas/ReportTraceparent"},
              "participants": {"type": "array", "maxItems": 256, "items": {"$ref": "#/components/schemas/ParticipantOutcome"}}}},
            {"type": "object", "required": ["attempt", "lease", "state"], "description": "completed only when every participant completed",
             "properties": {
              "attempt": {"$ref": "#/components/schemas/Attempt"}, "lease": {"$ref": "#/components/schemas/Lease"}, "state": {"const": "completed"},
              "result": {}, "error": {"$ref": "#/components/schemas/ErrorText"}, "traceparent": {"$ref": "#/components/schemas/ReportTraceparent"},
              "participants": {"type": "array", "maxItems": 256, "items": {"allOf": [{"$ref": "#/components/schemas/ParticipantOutcome"}, {"type": "object", "properties": {"state": {"const": "completed"}}}]}}}}],
            "description": "result and each participant's result: at most result_bytes as JSON, json_depth deep, no NUL; each participant once"},
          "ParticipantOutcome": {"type": "object", "required": ["node", "state"],
            "if": {"required": ["rollback"], "properties": {"rollback": {"type": "object"}}}, "then": {"properties": {"state": {"const": "completed"}}},
            "properties": {
              "node": {"$ref": "#/components/schemas/Identifier"}, "state": {"type": "string", "enum": ["completed", "failed", "cancelled"]}, "result": {}, "error": {"$ref": "#/components/schemas/ErrorText"},
              "started_at": {"type": "string", "format": "date-time"}, "finished_at": {"type": "string", "format": "date-time"},
              "rollback": {"type": "object", "required": ["state"], "description": "only on a participant that completed: how its rollback went", "properties": {"state": {"type": "string", "enum": ["completed", "failed"]}, "result": {}, "error": {"$ref": "#/components/schemas/ErrorText"}}},
              "decided": {"type": "boolean", "description": "this outcome settled the task under its completion policy"}}}
        }
      }
    }
    """#
}
