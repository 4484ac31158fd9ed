import Foundation
import GraftSupport
import Testing
@testable import GraftModels

/// `graft classify --adapt tca`: TCA on a model's sentence embeddings, logistic regression on the
/// projected source, the documents classified as `graft classify` prints them.
@Suite(.enabled(if: graftExecutable != nil, "needs the built graft executable next to the test bundle"))
struct TCACLITests {
    @Test func tcaClassifiesWithoutAFineTunedModel() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TaskCLITests.baseModel(in: dir)
        let (train, _) = try FineTuneCLITests.sentimentData(dir)
        let target = try TaskCLITests.write("a red house .\na blue tree .\nthe red mat .\nthe blue house ran .\n", dir, "target.txt")
        let docs = "the red cat sat on the mat .\n\nthe blue dog ran and sat .\n"
        for kernel in ["linear", "rbf"] {
            let r = try runGraft(["classify", "--adapt", "tca", "--model", base, "--train", train, "--target", target,
                                  "--components", "4", "--kernel", kernel, "--threads", "1"], stdin: docs)
            #expect(r.0 == 0, "\(r.2)")
            let lines = r.1.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            #expect(lines.count == 3, "\(r.1)")
            let rows = try lines.map { try TaskCLITests.json($0) }
            // The source's own two sentences get their labels back; the empty document gets none.
            #expect(rows[0]["label"] as? String == "pos" && rows[2]["label"] as? String == "neg", "\(kernel): \(r.1)")
            #expect(rows[1]["label"] is NSNull)
            for row in [rows[0], rows[2]] {
                let scores = try #require(row["scores"] as? [String: Double])
                #expect(Set(scores.keys) == ["neg", "pos"] && abs(scores.values.reduce(0, +) - 1) < 1e-5)
            }
            #expect(r.2.contains("TCA (\(kernel) kernel, 4 components"), "\(r.2)")
        }
        let r = try runGraft(["classify", "--adapt", "tca", "--model", base, "--train", train], stdin: docs)
        #expect(r.0 != 0 && r.2.contains("--target FILE"), "\(r.2)")
    }
}
