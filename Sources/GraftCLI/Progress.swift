import Foundation

/// Progress of long work (imports, tokenization, training) on standard error.
///
/// On a terminal one line is redrawn in place (`\r`) at most 10 times a second; when stderr is
/// not a terminal (a log file, CI) a plain line is printed every `logInterval` seconds instead.
/// Shows count/total, percentage, rate, ETA and free-form fields (e.g. `loss=2.31`).
///
/// ```swift
/// let progress = ProgressReporter("pretrain", total: steps, unit: .items("steps"))
/// for step in 1...steps { ...; progress.update(step, fields: ["loss": String(format: "%.3f", loss)]) }
/// progress.finish()
/// ```
/// The environment variable `GRAFT_PROGRESS_INTERVAL` (seconds) overrides `logInterval`
/// (e.g. `0` prints a line at every update, which tests use to follow a child process).
/// Not thread-safe: call it from one thread.
final class ProgressReporter {
    /// How counts are shown.
    enum Unit {
        /// Plain counts with a unit name ("docs", "steps").
        case items(String)
        /// Byte counts, shown in MB, rate in MB/s.
        case bytes
    }

    let label: String
    var total: Int?
    let unit: Unit
    let isTerminal: Bool
    let logInterval: Double
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var completed = 0
    private var fields: [(String, String)] = []
    private var lastLength = 0
    private var finished = false

    /// - Parameters:
    ///   - total: the count at completion, when known (enables percentage and ETA).
    ///   - logInterval: seconds between lines when stderr is not a terminal.
    ///   - enabled: false makes every call a no-op (for `--quiet` or `--json`).
    init(_ label: String, total: Int? = nil, unit: Unit = .items("items"), logInterval: Double = 10, enabled: Bool = true) {
        self.label = label
        self.total = total
        self.unit = unit
        self.logInterval = ProcessInfo.processInfo.environment["GRAFT_PROGRESS_INTERVAL"].flatMap(Double.init) ?? logInterval
        self.isTerminal = isatty(2) != 0
        self.finished = !enabled
    }

    /// Sets the count done so far and the extra fields; redraws when due.
    func update(_ completed: Int, fields: KeyValuePairs<String, String> = [:]) {
        guard !finished else { return }
        self.completed = completed
        if !fields.isEmpty { self.fields = fields.map { ($0.key, $0.value) } }
        let now = Date()
        let due = isTerminal ? 0.1 : logInterval
        if now.timeIntervalSince(lastDraw) >= due {
            lastDraw = now
            draw(final: false)
        }
    }

    /// Adds `n` to the count.
    func advance(by n: Int = 1, fields: KeyValuePairs<String, String> = [:]) {
        update(completed + n, fields: fields)
    }

    /// Prints the final state and ends the line. Further calls do nothing.
    func finish(fields: KeyValuePairs<String, String> = [:]) {
        guard !finished else { return }
        if !fields.isEmpty { self.fields = fields.map { ($0.key, $0.value) } }
        draw(final: true)
        finished = true
    }

    /// Prints a message on its own line (above the progress line on a terminal).
    func note(_ message: String) {
        var out = ""
        if isTerminal && lastLength > 0 && !finished {
            out = "\r" + String(repeating: " ", count: lastLength) + "\r"
            lastLength = 0
        }
        out += message + "\n"
        FileHandle.standardError.write(Data(out.utf8))
        if isTerminal && !finished { draw(final: false) }
    }

    /// Ends without a final line (e.g. when there turned out to be nothing to do): erases the
    /// line on a terminal, prints nothing otherwise.
    func cancel() {
        guard !finished else { return }
        finished = true
        if isTerminal && lastLength > 0 {
            FileHandle.standardError.write(Data(("\r" + String(repeating: " ", count: lastLength) + "\r").utf8))
        }
    }

    /// The current line (no terminal control characters).
    func line(final: Bool) -> String {
        let elapsed = Date().timeIntervalSince(start)
        var parts = [label]
        if let total, total > 0 {
            let pct = Double(completed) / Double(total) * 100
            parts.append("\(format(completed))/\(format(total)) \(unitName) (\(String(format: "%.1f", pct))%)")
        } else {
            parts.append("\(format(completed)) \(unitName)")
        }
        if elapsed > 0 {
            let rate = Double(completed) / elapsed
            parts.append(rateText(rate))
            if !final, let total, rate > 0, completed < total {
                parts.append("ETA \(Self.duration(Double(total - completed) / rate))")
            }
        }
        parts.append(final ? "in \(Self.duration(elapsed))" : "\(Self.duration(elapsed)) elapsed")
        for (k, v) in fields { parts.append("\(k)=\(v)") }
        return parts.joined(separator: "  ")
    }

    private var unitName: String {
        switch unit {
        case .items(let name): return name
        case .bytes: return "MB"
        }
    }

    private func format(_ n: Int) -> String {
        switch unit {
        case .items: return Self.grouped(n)
        case .bytes: return String(format: "%.1f", Double(n) / 1e6)
        }
    }

    private func rateText(_ rate: Double) -> String {
        switch unit {
        case .items(let name):
            // Slow work (training steps) needs decimals; fast work reads better grouped.
            return rate < 10 ? String(format: "%.2f %@/s", rate, name as NSString) : "\(Self.grouped(Int(rate.rounded()))) \(name)/s"
        case .bytes: return String(format: "%.2f MB/s", rate / 1e6)
        }
    }

    private func draw(final: Bool) {
        let text = line(final: final)
        var out: String
        if isTerminal {
            let pad = max(0, lastLength - text.count)
            out = "\r" + text + String(repeating: " ", count: pad)
            if final { out += "\n" }
            lastLength = text.count
        } else {
            out = text + "\n"
        }
        FileHandle.standardError.write(Data(out.utf8))
    }

    /// `1234567` → `1,234,567`.
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return n < 0 ? "-" + out : out
    }

    /// Seconds as `m:ss` or `h:mm:ss`.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return String(format: "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60) }
        return String(format: "%d:%02d", s / 60, s % 60)
    }
}
