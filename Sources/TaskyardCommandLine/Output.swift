import Foundation
import TaskyardDomain

/// Writes a line to standard output at once, unbuffered, so that progress shows as it happens also when
/// the output goes to a pipe or a file.
public func say(_ line: String) {
    // Nothing a server stored (an error, a name) reaches the terminal as an escape sequence.
    FileHandle.standardOutput.write(Data((withoutControlCharacters(line) + "\n").utf8))
}
