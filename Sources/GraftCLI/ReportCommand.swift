import ArgumentParser
import Foundation
import GraftEngine
import GraftModels
import GraftSupport

/// `graft report RUN... --out report.html [--svg-dir DIR]`: the learning curves of training runs
/// (their `history.jsonl`) as one self-contained HTML page of hand-written SVG charts (no
/// scripts), the final scores side by side, and each chart as its own SVG file.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Draw the training and dev curves of fine-tuning or pretraining runs as an HTML page (and SVG files).",
        discussion: """
            Each RUN is a run's output directory (graft finetune/pretrain --out), whose history.jsonl the trainer \
            writes as it goes. The page shows the training loss and each dev metric that selected the runs' best \
            models (and the dev loss) against updates, one line per run, and a table of final scores. It needs no \
            network and runs no script. --svg-dir also writes every chart as an SVG file, e.g. for a README.
            """)

    @Argument(help: "Run output directories, each holding history.jsonl.") var runs: [String]
    @Option(help: "The HTML page to write.") var out: String = "report.html"
    @Option(name: .customLong("svg-dir"), help: "Also write each chart as NAME.svg into this directory.") var svgDir: String?
    @Option(help: "The page's title.") var title: String = "Graft training report"
    @Flag(help: "Print what was written and each run's final scores as one JSON object.") var json = false

    func validate() throws {
        guard !runs.isEmpty else { throw ValidationError("give at least one run directory") }
    }

    func run() throws {
        let histories = try runs.map { try RunHistory(directory: $0) }
        let charts = Self.charts(histories)
        var written: [String] = []
        if let svgDir {
            do { try createDirectories(atPath: svgDir) } catch SupportError.io(_, _, let reason) {
                throw CLIError("\(svgDir): cannot create the directory: \(reason)")
            }
            for chart in charts {
                let path = (svgDir as NSString).appendingPathComponent(chart.fileName)
                try writeFile(chart.svg(), to: path)
                written.append(path)
            }
        }
        try writeFile(Self.html(title: title, runs: histories, charts: charts), to: out)
        if json {
            print(JSONValue.object([("html", .string(out)), ("svg", .array(written.map { .string($0) })),
                                    ("runs", .array(histories.map { $0.summaryJSON }))]).serialized())
        } else {
            printError("wrote \(out) (\(charts.count) charts)" + (written.isEmpty ? "" : "; SVG files in \(svgDir!)"))
        }
    }

    private func writeFile(_ text: String, to path: String) throws {
        do { try AtomicFile.write(text, to: path) } catch { throw CLIError("\(path): \(error)") }
    }

    /// The training loss of every run, then each dev main metric (its runs), then the dev loss
    /// where it is not itself a main metric.
    static func charts(_ runs: [RunHistory]) -> [LineChart] {
        var charts = [LineChart(title: "Training loss", fileName: "train-loss.svg", yLabel: "loss",
                                series: runs.map { .init(name: $0.name, points: $0.steps.map { ($0.step, $0.loss) }) })]
        var metrics: [String] = []
        for r in runs { if let m = r.mainMetric, !metrics.contains(m) { metrics.append(m) } }
        if !metrics.contains("loss"), runs.contains(where: { r in r.evaluations.contains { $0.metrics["loss"] != nil } }) { metrics.append("loss") }
        for metric in metrics {
            let series = runs.compactMap { r -> LineChart.Series? in
                let points = r.evaluations.compactMap { e in e.metrics[metric].map { (e.step, $0) } }
                return points.isEmpty ? nil : .init(name: r.name, points: points)
            }
            charts.append(LineChart(title: "Dev \(metric)", fileName: "dev-\(LineChart.fileSafe(metric)).svg", yLabel: metric, series: series))
        }
        return charts
    }

    static func html(title: String, runs: [RunHistory], charts: [LineChart]) -> String {
        let e = LineChart.escape
        var rows = ""
        for (i, r) in runs.enumerated() {
            let color = LineChart.palette[i % LineChart.palette.count]
            let best = r.best.map { String(format: "%.4f (update %d)", $0.value, Int($0.step)) } ?? "–"
            let last = r.evaluations.last.map { ev in ev.metrics.keys.sorted().map { "\($0) \(String(format: "%.4f", ev.metrics[$0]!))" }.joined(separator: ", ") } ?? "–"
            rows += "<tr><td><span class=\"key\" style=\"background:\(color)\"></span>\(e(r.name))</td><td>\(r.steps.last.map { String(Int($0.step)) } ?? "0")</td>"
            rows += "<td>\(r.steps.last.map { String(format: "%.4f", $0.loss) } ?? "–")</td><td>\(e(r.mainMetric ?? "–"))</td><td>\(best)</td><td>\(e(last))</td></tr>\n"
        }
        var figures = ""
        for c in charts { figures += "<figure>\n\(c.svg())</figure>\n" }
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>\(e(title))</title>
            <style>
            body { font-family: sans-serif; margin: 2em; color: #222; }
            table { border-collapse: collapse; margin-bottom: 2em; }
            th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; font-size: 0.9em; }
            th { background: #f3f3f3; }
            .key { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; }
            figure { display: inline-block; margin: 0 1em 1em 0; }
            </style>
            </head>
            <body>
            <h1>\(e(title))</h1>
            <table>
            <tr><th>run</th><th>updates</th><th>last training loss</th><th>main metric</th><th>best dev value</th><th>last evaluation</th></tr>
            \(rows)</table>
            \(figures)</body>
            </html>

            """
    }
}

/// One run's `history.jsonl`, read for a report.
struct RunHistory {
    struct Step { var step: Double; var loss: Double }
    struct Evaluation { var step: Double; var metrics: [String: Double]; var isBest: Bool }
    /// The run directory as given.
    var name: String
    var steps: [Step] = []
    var evaluations: [Evaluation] = []
    /// The metric that selected the best model (the evaluations' `main_metric`).
    var mainMetric: String?
    var higherIsBetter = true

    init(directory: String) throws {
        name = directory
        let path = (directory as NSString).appendingPathComponent(TrainingHistory.fileName)
        let lines: [JSONValue]
        do { lines = try TrainingHistory.read(path) } catch ModelError.missingFile {
            throw CLIError("\(directory): no training history to draw (no \(TrainingHistory.fileName)); graft finetune and graft pretrain write one as they train")
        } catch let e as ModelError {
            throw CLIError("\(e)")
        }
        guard !lines.isEmpty else { throw CLIError("\(path): the history is empty (no update finished in this run)") }
        for (i, line) in lines.enumerated() {
            guard let type = line["type"]?.string, let step = line["step"]?.double else {
                throw CLIError("\(path):\(i + 1): a history line needs \"type\" and \"step\"")
            }
            guard step >= 0, step <= Double(TrainingCheckpoint.maxSteps), step == step.rounded() else {
                throw CLIError("\(path):\(i + 1): step \(step) is not an update number (a whole number in 0...\(TrainingCheckpoint.maxSteps))")
            }
            switch type {
            case "step":
                guard let loss = line["loss"]?.double else { throw CLIError("\(path):\(i + 1): a step line needs \"loss\"") }
                steps.append(Step(step: step, loss: loss))
            case "eval":
                guard let m = line["metrics"]?.object else { throw CLIError("\(path):\(i + 1): an eval line needs \"metrics\"") }
                var metrics: [String: Double] = [:]
                for (k, v) in m { if let d = v.double { metrics[k] = d } }
                evaluations.append(Evaluation(step: step, metrics: metrics, isBest: line["best"]?.bool ?? false))
                mainMetric = line["main_metric"]?.string ?? mainMetric
                higherIsBetter = line["higher_is_better"]?.bool ?? higherIsBetter
            default:
                throw CLIError("\(path):\(i + 1): unknown history line type \"\(type)\" (step or eval)")
            }
        }
    }

    /// The best value of the main metric and its update.
    var best: (value: Double, step: Double)? {
        guard let mainMetric else { return nil }
        var best: (value: Double, step: Double)?
        for e in evaluations {
            guard let v = e.metrics[mainMetric] else { continue }
            if best == nil || (higherIsBetter ? v > best!.value : v < best!.value) { best = (v, e.step) }
        }
        return best
    }

    var summaryJSON: JSONValue {
        var fields: [(String, JSONValue)] = [("run", .string(name)), ("updates", .integer(Int(steps.last?.step ?? 0))),
                                             ("evaluations", .integer(evaluations.count))]
        if let l = steps.last { fields.append(("last_train_loss", .number(l.loss))) }
        if let m = mainMetric, let b = best { fields.append(("best_dev_\(m)", .number(b.value))) }
        return .object(fields)
    }
}

/// A line chart drawn as hand-written SVG: axes with "nice" ticks (1, 2, 5 × 10^k), one polyline
/// per series (markers where a series has few points), a legend below and axis labels.
struct LineChart {
    struct Series {
        var name: String
        var points: [(Double, Double)]
    }
    var title: String
    /// The SVG file's name in `--svg-dir`.
    var fileName: String
    var xLabel = "update"
    var yLabel: String
    var series: [Series]

    init(title: String, fileName: String, yLabel: String, series: [Series]) {
        self.title = title; self.fileName = fileName; self.yLabel = yLabel; self.series = series
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    static func fileSafe(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" })
    }

    /// Ticks covering `lo...hi`: about `count` multiples of 1, 2 or 5 × 10^k, from the largest
    /// multiple at or below `lo` to the smallest at or above `hi`.
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> (values: [Double], step: Double) {
        // Bounded so that hi - lo stays finite (a history may hold losses near ±1.8e308).
        var lo = min(max(lo, -1e300), 1e300), hi = min(max(hi, -1e300), 1e300)
        if hi <= lo { let pad = lo == 0 ? 1 : abs(lo) * 0.1; lo -= pad; hi += pad }
        let raw = (hi - lo) / Double(max(count - 1, 1))
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        let first = floor(lo / step + 1e-9) * step, last = ceil(hi / step - 1e-9) * step
        let n = Int(exactly: ((last - first) / step).rounded()).map { min(max($0, 1), 100) } ?? 1
        return ((0...n).map { first + Double($0) * step }, step)
    }

    static func label(_ v: Double, step: Double) -> String {
        let decimals = max(0, Int(-floor(log10(step) + 1e-9)))
        return String(format: "%.\(decimals)f", abs(v) < step * 1e-9 ? 0 : v)
    }

    /// The chart as an SVG document: the plot, then the legend below the axis label (one row
    /// per series, so it never hides a line).
    func svg(width: Double = 640, plotHeight: Double = 276) -> String {
        let e = Self.escape
        let left = 64.0, right = 16.0, top = 36.0, bottom = 48.0 + 16 * Double(series.count) + 6
        let height = top + plotHeight + bottom
        let plotW = width - left - right, plotH = height - top - bottom
        let all = series.flatMap(\.points).filter { $0.0.isFinite && $0.1.isFinite }
        let xTicks = Self.ticks(min(0, all.map(\.0).min() ?? 0), all.map(\.0).max() ?? 1)
        let yTicks = Self.ticks(all.map(\.1).min() ?? 0, all.map(\.1).max() ?? 1)
        let x0 = xTicks.values.first!, x1 = xTicks.values.last!, y0 = yTicks.values.first!, y1 = yTicks.values.last!
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * plotW }
        func py(_ y: Double) -> Double { top + plotH - (y - y0) / (y1 - y0) * plotH }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<title>\(e(title))</title>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(f(width / 2))\" y=\"20\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">\(e(title))</text>\n"
        // Grid and ticks.
        for v in yTicks.values {
            s += "<line x1=\"\(f(left))\" y1=\"\(f(py(v)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(py(v)))\" stroke=\"#e5e5e5\"/>\n"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(py(v) + 4))\" text-anchor=\"end\">\(Self.label(v, step: yTicks.step))</text>\n"
        }
        for v in xTicks.values {
            s += "<line x1=\"\(f(px(v)))\" y1=\"\(f(top + plotH))\" x2=\"\(f(px(v)))\" y2=\"\(f(top + plotH + 5))\" stroke=\"#333\"/>\n"
            s += "<text x=\"\(f(px(v)))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\">\(Self.label(v, step: xTicks.step))</text>\n"
        }
        // Axes and their labels.
        s += "<polyline points=\"\(f(left)),\(f(top)) \(f(left)),\(f(top + plotH)) \(f(left + plotW)),\(f(top + plotH))\" fill=\"none\" stroke=\"#333\"/>\n"
        s += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(top + plotH + 34))\" text-anchor=\"middle\">\(e(xLabel))</text>\n"
        s += "<text transform=\"translate(16 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(e(yLabel))</text>\n"
        // One line per series.
        for (i, serie) in series.enumerated() {
            let color = Self.palette[i % Self.palette.count]
            let points = serie.points.filter { $0.0.isFinite && $0.1.isFinite }
            s += "<polyline points=\"\(points.map { "\(f(px($0.0))),\(f(py($0.1)))" }.joined(separator: " "))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.6\"/>\n"
            if points.count <= 40 {
                for p in points { s += "<circle cx=\"\(f(px(p.0)))\" cy=\"\(f(py(p.1)))\" r=\"2.8\" fill=\"\(color)\"/>\n" }
            }
        }
        // Legend below the axis label.
        for (i, serie) in series.enumerated() {
            let y = top + plotH + 52 + Double(i) * 16, color = Self.palette[i % Self.palette.count]
            s += "<line x1=\"\(f(left))\" y1=\"\(f(y - 4))\" x2=\"\(f(left + 18))\" y2=\"\(f(y - 4))\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            s += "<text x=\"\(f(left + 24))\" y=\"\(f(y))\">\(e(serie.name))</text>\n"
        }
        return s + "</svg>\n"
    }
}
