/// Cluster, node and task type names: 1–64 characters from `[A-Za-z0-9._-]` (the API contract), so they
/// are safe in URL paths, file names (executable handlers) and notification channel names.
public enum Identifier {
    public static let maximumLength = 64

    public static func isValid(_ value: String) -> Bool {
        guard !value.isEmpty, value.utf8.count <= maximumLength else { return false }
        return value.utf8.allSatisfy { byte in
            (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
                || byte == 46 || byte == 95 || byte == 45
        }
    }

    public static func validate(_ value: String, field: String) throws(TaskyardError) {
        guard isValid(value) else {
            throw .invalid(field, "must be 1–64 characters from A–Z, a–z, 0–9, '.', '_' and '-' (got \(quoted(value)))")
        }
    }

    /// Task types are names: 1–64 characters from `[A-Za-z0-9_-]`, not starting with '-'. No dots, so a type
    /// never names a rollback executable (`x.rollback`), a dotfile, or anything but a handler.
    public static func isValidTaskType(_ value: String) -> Bool {
        guard let first = value.utf8.first, first != 45, value.utf8.count <= maximumLength else { return false }
        return value.utf8.allSatisfy { byte in
            (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
                || byte == 95 || byte == 45
        }
    }

    public static func validateTaskType(_ value: String, field: String) throws(TaskyardError) {
        guard isValidTaskType(value) else {
            throw .invalid(field, "must be 1–64 characters from A–Z, a–z, 0–9, '_' and '-', not starting with '-' (got \(quoted(value)))")
        }
    }
}

/// A value quoted for an error message, cut to 80 characters: an error never echoes a hostile value whole.
func quoted(_ value: String) -> String {
    let cut = value.count > 80 ? String(value.prefix(80)) + "…" : value
    return String(reflecting: cut)
}
