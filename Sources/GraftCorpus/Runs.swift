import Foundation
import GraftSupport
import GRDB

/// How a run ended.
public enum RunStatus: String, Sendable, Codable {
    /// Stopped by the user (Ctrl-C) after writing a checkpoint; can be resumed.
    case running, finished, failed, interrupted
}

/// A recorded run (pretraining, fine-tuning, evaluation…).
public struct RunInfo: Sendable, Equatable {
    public var id: Int64
    public var kind: String
    public var name: String?
    /// The configuration as a JSON text.
    public var config: String
    public var status: RunStatus
    public var startedAt: Double
    public var finishedAt: Double?
    public var seconds: Double?
    /// Final metrics as a JSON object text.
    public var summary: String?
}

/// One logged value of a run.
public struct RunMetric: Sendable, Equatable {
    public var step: Int
    public var name: String
    public var value: Double
    /// Seconds since the run started.
    public var seconds: Double
}

/// Records one run: log metrics as training goes, then finish it.
///
/// ```swift
/// let run = try store.startRun(kind: "pretrain", name: "bert-tiny", config: config)
/// try run.log(step: 100, metrics: ["loss": 5.2, "tokens_per_s": 1830])
/// try run.finish(summary: ["loss": 3.1])
/// ```
/// A run that is never finished stays `running` (e.g. the process was killed).
public struct RunRecorder: Sendable {
    public let id: Int64
    let store: CorpusStore
    let started: Date

    /// Logs one value at a step.
    public func log(step: Int, name: String, value: Double) throws {
        try log(step: step, metrics: [name: value])
    }

    /// Logs several values at a step, in one transaction. A value that is not finite (SQLite
    /// would store NaN as NULL) is left out: the run's history file keeps it as `null`.
    public func log(step: Int, metrics: [String: Double]) throws {
        let seconds = Date().timeIntervalSince(started)
        try store.write { db in
            let insert = try db.cachedStatement(sql: "INSERT INTO run_metric(runId, step, name, value, seconds) VALUES (?, ?, ?, ?, ?)")
            for (name, value) in metrics.sorted(by: { $0.key < $1.key }) where value.isFinite {
                try insert.execute(arguments: [id, step, name, value, seconds])
            }
        }
    }

    /// Marks the run finished (or failed) with its wall time and final metrics (a metric that
    /// is not finite, such as a diverged loss, is stored as `null`).
    public func finish(status: RunStatus = .finished, summary: [String: Double] = [:]) throws {
        let now = Date()
        let json = try JSONValue(jsonObject: summary).serialized()
        try store.write { db in
            try db.execute(sql: "UPDATE run SET status = ?, finishedAt = ?, seconds = ?, summary = ? WHERE id = ?",
                           arguments: [status.rawValue, now.timeIntervalSince1970, now.timeIntervalSince(started), json, id])
        }
    }
}

extension CorpusStore {
    /// Starts recording a run; `config` is stored as JSON (keys sorted).
    public func startRun(kind: String, name: String? = nil, config: some Encodable) throws -> RunRecorder {
        let json: String
        do { json = try JSONValue(encoding: config, sortedKeys: true).serialized() } catch {
            throw CorpusError.invalidArgument("run config is not encodable: \(error)")
        }
        return try startRun(kind: kind, name: name, configJSON: json)
    }

    /// Starts recording a run with a configuration already in JSON.
    public func startRun(kind: String, name: String? = nil, configJSON: String) throws -> RunRecorder {
        let started = Date()
        let id = try write { db -> Int64 in
            try db.execute(sql: "INSERT INTO run(kind, name, config, status, startedAt) VALUES (?, ?, ?, 'running', ?)",
                           arguments: [kind, name, configJSON, started.timeIntervalSince1970])
            return db.lastInsertedRowID
        }
        return RunRecorder(id: id, store: self, started: started)
    }

    /// All runs, newest first.
    public func runs() throws -> [RunInfo] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM run ORDER BY id DESC").map(RunInfo.init(row:))
        }
    }

    /// One run.
    public func run(id: Int64) throws -> RunInfo {
        guard let row = try read({ try Row.fetchOne($0, sql: "SELECT * FROM run WHERE id = ?", arguments: [id]) }) else {
            throw CorpusError.unknownRun(id)
        }
        return RunInfo(row: row)
    }

    /// The metrics of a run, by step then name; `name` restricts to one metric.
    public func metrics(run id: Int64, name: String? = nil) throws -> [RunMetric] {
        try read { db in
            var sql = "SELECT step, name, value, seconds FROM run_metric WHERE runId = ?"
            var args: StatementArguments = [id]
            if let name { sql += " AND name = ?"; args += [name] }
            sql += " ORDER BY step, name, rowid"
            return try Row.fetchAll(db, sql: sql, arguments: args).map {
                RunMetric(step: $0["step"], name: $0["name"], value: $0["value"], seconds: $0["seconds"])
            }
        }
    }
}

extension RunInfo {
    init(row: Row) {
        self.init(id: row["id"], kind: row["kind"], name: row["name"], config: row["config"],
                  status: RunStatus(rawValue: row["status"]) ?? .running, startedAt: row["startedAt"],
                  finishedAt: row["finishedAt"], seconds: row["seconds"], summary: row["summary"])
    }
}
