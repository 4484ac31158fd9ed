import Foundation
import GraftSupport

/// A run's learning curves, `OUT/history.jsonl`: one JSON object per line, appended (and handed
/// to the operating system) as training goes, so a report can be drawn while a run is going and
/// after it was killed.
///
/// - an update: `{"type": "step", "step": 12, "epoch": 0, "loss": 0.69, "lr": 5e-5,
///   "grad_norm": 1.3, "tokens_per_s": 2100, "accuracy": 0.5}` (`accuracy` when the objective
///   counts predictions);
/// - an evaluation: `{"type": "eval", "step": 12, "main_metric": "f1", "higher_is_better": true,
///   "best": true, "metrics": {"f1": 0.81, …}}`.
///
/// A fresh run starts the file empty. A resumed run keeps the complete lines up to the step of
/// the checkpoint it resumes from and drops the later ones (written after that checkpoint by the
/// process that stopped), so after the resumed run the file holds every update and evaluation
/// exactly once, as an uninterrupted run's does.
public final class TrainingHistory {
    public static let fileName = "history.jsonl"
    /// The file's path.
    public let path: String
    private let handle: FileHandle

    /// Opens `directory/history.jsonl` for a run starting fresh (`resumingAt` nil: emptied) or
    /// resuming after update `resumingAt` (later lines and a torn last line dropped).
    public init(directory: URL, resumingAt step: Int?) throws {
        path = directory.appendingPathComponent(Self.fileName).path
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            var kept: [UInt8] = []
            if let step, let data = FileManager.default.contents(atPath: path) {
                for line in Self.lines(of: [UInt8](data)) {
                    guard let s = (try? JSONValue.parse(line, path: path))?["step"]?.int, s <= step else { break }
                    kept += line + [10]
                }
            }
            try AtomicFile.write(kept, to: path)
            guard let h = FileHandle(forWritingAtPath: path) else { throw ModelError.io(file: path, problem: "cannot open for appending") }
            h.seekToEndOfFile()
            handle = h
        } catch let e as ModelError { throw e } catch {
            throw ModelError.io(file: path, problem: (error as NSError).localizedDescription)
        }
    }

    deinit { try? handle.close() }

    /// The complete (newline-terminated) lines of `bytes`, without their newlines.
    static func lines(of bytes: [UInt8]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var start = 0
        for (i, b) in bytes.enumerated() where b == 10 {
            out.append(Array(bytes[start..<i]))
            start = i + 1
        }
        return out
    }

    /// Appends one line.
    func append(_ value: JSONValue) throws {
        do { try handle.write(contentsOf: Array((value.serialized() + "\n").utf8)) } catch {
            throw ModelError.io(file: path, problem: "\(error)")
        }
    }

    func record(_ s: TrainingStep, epoch: Int) throws {
        var fields: [(String, JSONValue)] = [("type", .string("step")), ("step", .integer(s.step)), ("epoch", .integer(epoch)),
                                             ("loss", .float(s.loss)), ("lr", .float(s.learningRate)), ("grad_norm", .number(s.gradNorm)),
                                             ("tokens_per_s", .number(s.tokensPerSecond.rounded()))]
        if let a = s.accuracy { fields.append(("accuracy", .float(a))) }
        try append(.object(fields))
    }

    func record(_ e: TrainingEvaluation) throws {
        try append(.object([("type", .string("eval")), ("step", .integer(e.step)), ("main_metric", .string(e.mainMetric.name)),
                            ("higher_is_better", .bool(e.mainMetric.higherIsBetter)), ("best", .bool(e.isBest)),
                            ("metrics", .object(e.metrics.keys.sorted().map { ($0, .number(e.metrics[$0]!)) }))]))
    }

    /// The lines of a history file, parsed (a torn last line, from a process killed while writing
    /// it, is skipped); an unreadable file or a malformed complete line is an error naming the
    /// file and line.
    public static func read(_ path: String) throws -> [JSONValue] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError.missingFile(path) }
        return try lines(of: [UInt8](data)).enumerated().map { i, line in
            do { return try JSONValue.parse(line, path: path) } catch SupportError.malformedJSON(_, _, let reason) {
                throw ModelError.badConfig(file: "\(path):\(i + 1)", problem: reason)
            }
        }
    }
}
