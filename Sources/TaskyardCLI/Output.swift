import Foundation

/// Writes a line to standard output at once, unbuffered, so that progress shows as it happens also when
/// the output goes to a pipe or a file.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
