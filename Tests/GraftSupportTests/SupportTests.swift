import Foundation
import GraftSupport
import Testing

private func tempDirectory() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("graft-support-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

@Suite struct AtomicFileTests {
    @Test func writesAndReplaces() throws {
        let dir = try tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }  // cleanup of a test directory
        let path = dir.appendingPathComponent("f.txt").path
        try AtomicFile.write("one", to: path)
        try AtomicFile.write("two", to: path)
        #expect(String(decoding: FileManager.default.contents(atPath: path)!, as: UTF8.self) == "two")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["f.txt"])
    }

    /// A failure injected at each step leaves the old file (before the rename) or the new one
    /// (after it), the error names the file and the step, and no temporary file remains.
    @Test(arguments: AtomicFile.Step.allCases)
    func failureAtEachStepLeavesOldOrNewFile(step: AtomicFile.Step) throws {
        let dir = try tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }  // cleanup of a test directory
        let path = dir.appendingPathComponent("model.json").path
        try AtomicFile.write("old contents", to: path)
        do {
            try AtomicFile.write(Array("new contents".utf8), to: path, failing: { $0 == step })
            Issue.record("the injected \(step) failure was not reported")
        } catch let SupportError.io(file, operation, reason) {
            #expect(file == path)
            #expect(operation == step.rawValue)
            #expect(reason == "injected failure")
        }
        let text = String(decoding: FileManager.default.contents(atPath: path)!, as: UTF8.self)
        let renamed = step == .fsyncDirectory
        #expect(text == (renamed ? "new contents" : "old contents"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["model.json"])
    }

    @Test func failureWhileWritingStreamedContentsRemovesTheTemporaryFile() throws {
        let dir = try tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }  // cleanup of a test directory
        let path = dir.appendingPathComponent("weights.bin").path
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try AtomicFile.write(to: path) { file in
                try file.write([1, 2, 3])
                throw Boom()
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func missingDirectoryIsACreateError() throws {
        let path = "/nonexistent-graft-dir/x.json"
        #expect(throws: SupportError.io(path: path, operation: "create", reason: "No such file or directory")) {
            try AtomicFile.write("x", to: path)
        }
    }

    /// A device is written in place, its errors reported, and stays a device (a rename would
    /// have put a regular file at `/dev/full`).
    @Test func devicesAreWrittenInPlace() throws {
        #expect(throws: SupportError.io(path: "/dev/full", operation: "write", reason: "No space left on device")) {
            try AtomicFile.write("x", to: "/dev/full")
        }
        var st = stat()
        #expect(stat("/dev/full", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR)
        try AtomicFile.write("x", to: "/dev/null")
        #expect(stat("/dev/null", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR)
    }
}

@Suite struct LineReaderTests {
    private func lines(of bytes: [UInt8], chunkSize: Int = 3) throws -> [(String, Int, Int)] {
        let dir = try tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }  // cleanup of a test directory
        let path = dir.appendingPathComponent("in.txt").path
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let reader = try LineReader(path: path, chunkSize: chunkSize)
        var out: [(String, Int, Int)] = []
        while let line = try reader.next() { out.append((String(decoding: line.bytes, as: UTF8.self), line.number, line.offset)) }
        #expect(reader.bytesRead == bytes.count)
        return out
    }

    @Test func crlfKeepsTheCarriageReturn() throws {
        let got = try lines(of: Array("a\r\nbc\r\n".utf8))
        #expect(got.map(\.0) == ["a\r", "bc\r"])
        #expect(got.map(\.1) == [1, 2])
        #expect(got.map(\.2) == [0, 3])
    }

    @Test func loneCarriageReturnDoesNotEndALine() throws {
        #expect(try lines(of: Array("a\rb\nc".utf8)).map(\.0) == ["a\rb", "c"])
    }

    @Test func lastLineWithoutNewline() throws {
        let got = try lines(of: Array("first\nsecond longer than a chunk".utf8))
        #expect(got.map(\.0) == ["first", "second longer than a chunk"])
        #expect(got.map(\.2) == [0, 6])
    }

    @Test func emptyFileHasNoLinesAndBlankLinesAreKept() throws {
        #expect(try lines(of: []).isEmpty)
        #expect(try lines(of: Array("\n\nx\n".utf8)).map(\.0) == ["", "", "x"])
    }

    @Test func missingFileIsAnOpenError() {
        #expect(throws: SupportError.io(path: "/nonexistent-graft/x.txt", operation: "open", reason: "No such file or directory")) {
            try LineReader(path: "/nonexistent-graft/x.txt")
        }
    }
}

@Suite struct UtilityTests {
    @Test func utf8Validation() {
        #expect(UTF8Validation.firstInvalidByte(Array("héllo €𝄞".utf8)) == nil)
        #expect(UTF8Validation.firstInvalidByte([0x61, 0xC0, 0x80]) == 1)       // overlong
        #expect(UTF8Validation.firstInvalidByte([0xED, 0xA0, 0x80]) == 0)       // surrogate
        #expect(UTF8Validation.firstInvalidByte([0xF4, 0x90, 0x80, 0x80]) == 0) // past U+10FFFF
        #expect(UTF8Validation.firstInvalidByte([0x61, 0x62, 0xE2, 0x82]) == 2) // truncated
    }

    @Test func medianIsTheTrueMedian() {
        #expect(median([3, 1, 2]) == 2)
        #expect(median([4, 1, 3, 2]) == 2.5)
        #expect(median([]).isNaN)
    }

    /// The streams are fixed: checkpoints and shuffles made before GraftSupport must replay.
    @Test func generatorStreamsAreFixed() throws {
        var s = SplitMix64(seed: 0)
        #expect([s.next(), s.next(), s.next()] == [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
        var r = RNG(seed: 42)
        let first = (0..<4).map { _ in r.next() }
        var again = try RNG(state: RNG(seed: 42).stateWords)
        #expect((0..<4).map { _ in again.next() } == first)
        #expect(throws: SupportError.self) { try RNG(state: [0, 0, 0, 0]) }
    }

    /// Advancing the generator (through its characteristic polynomial for long distances) leaves
    /// it where as many calls of next() do, at distances on both sides of the stepping limit and
    /// from several states; skipNormals / skipUniforms take two draws and one per value.
    @Test func advancingEqualsStepping() throws {
        for (seed, steps) in [(1, 4095), (1, 4096), (7, 4097), (42, 65_537), (3, 1_000_003), (99, 2_345_678)] as [(UInt64, Int)] {
            var stepped = RNG(seed: seed), advanced = RNG(seed: seed)
            _ = stepped.next()
            _ = advanced.next()   // not the seeding state
            for _ in 0..<steps { _ = stepped.next() }
            advanced.advance(by: steps)
            #expect(stepped == advanced, "seed \(seed), \(steps) steps")
            #expect(stepped.next() == advanced.next())
        }
        var a = RNG(seed: 5), b = RNG(seed: 5)
        for _ in 0..<5_000 { _ = a.normal() }
        b.skipNormals(5_000)
        #expect(a == b)
        for _ in 0..<10_000 { _ = a.uniform() }
        b.skipUniforms(10_000)
        #expect(a == b)
    }

    @Test func jsonKeepsKeyOrderAndNamesTheLine() throws {
        let v = try JSONValue.parse("{\"b\": 1, \"a\": [true, null, \"x\"]}")
        #expect(v.serialized() == "{\"b\":1,\"a\":[true,null,\"x\"]}")
        #expect(throws: SupportError.malformedJSON(path: "f.json", line: 2, reason: "invalid JSON: expected ',' or '}'")) {
            try JSONValue.parse("{\"a\": 1\n ]", path: "f.json")
        }
    }
}

@Suite struct CreateDirectoriesTests {
    /// Creates missing parents, accepts an existing directory, and names a regular file in the
    /// way in plain words (not Foundation's "NSCocoaErrorDomain error 512").
    @Test func createsParentsAndNamesAFileInTheWay() throws {
        let dir = try tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }  // cleanup of a test directory
        let deep = dir.path + "/a/b/c"
        try createDirectories(atPath: deep)
        try createDirectories(atPath: deep + "/")  // exists already: fine
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: deep, isDirectory: &isDirectory) && isDirectory.boolValue)
        let file = dir.path + "/a/file"
        _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        #expect(throws: SupportError.io(path: file + "/x/y", operation: "create the directory", reason: "\(file) is not a directory")) {
            try createDirectories(atPath: file + "/x/y")
        }
        #expect(throws: SupportError.io(path: file, operation: "create the directory", reason: "\(file) is not a directory")) {
            try createDirectories(atPath: file)
        }
    }
}
