// Test-only stand-ins for the tokenizer pipeline, used to check the trainers on the shared
// wiki corpus against HuggingFace-trained references: BERT-uncased word splitting, GPT-2
// byte-level word splitting, greedy WordPiece and ranked-merge BPE token counting, and
// reading the HuggingFace tokenizer.json files.
import CUtf8proc
import Foundation
@testable import GraftTokenizers

enum TrainerCorpus {
    /// `<package root>` found from this file's path.
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `$GRAFT_DATA_DIR`, else `<package root>/../shared/data`, when it holds the wiki corpus.
    static let dataDirectory: URL? = {
        let env = ProcessInfo.processInfo.environment["GRAFT_DATA_DIR"]
        let dir = env.map { URL(fileURLWithPath: $0) }
            ?? packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data")
        let corpus = dir.appendingPathComponent("corpora/wiki-vital-en.jsonl")
        return FileManager.default.fileExists(atPath: corpus.path) ? dir : nil
    }()

    static var wikiCorpus: URL { dataDirectory!.appendingPathComponent("corpora/wiki-vital-en.jsonl") }

    static func trainedReference(_ name: String) -> URL {
        dataDirectory!.appendingPathComponent("fixtures/tokenizers/trained/\(name)/tokenizer.json")
    }

    /// The `text` field of one JSON line.
    static func jsonText(_ line: String) throws -> String? {
        if line.isEmpty { return nil }
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        return object?["text"] as? String
    }

    /// Counts the words of a JSON Lines corpus (field `text`) with `split`.
    static func countWords(_ files: [URL], threads: Int = 2, split: @escaping WordCounter.Splitter) throws -> WordCounts {
        var counter = WordCounter(threads: threads, split: split)
        for file in files {
            if file.pathExtension == "jsonl" {
                try counter.add(linesOfFile: file, transform: jsonText)
            } else {
                try counter.add(linesOfFile: file)
            }
        }
        return counter.counts()
    }
}

// MARK: - Unicode classes

@inline(__always) private func category(_ v: UInt32) -> Int {
    Int(utf8proc_category(Int32(bitPattern: v)).rawValue)
}
@inline(__always) private func isLetter(_ v: UInt32) -> Bool { (1...5).contains(category(v)) }
@inline(__always) private func isNumber(_ v: UInt32) -> Bool { (9...11).contains(category(v)) }
/// Unicode White_Space.
@inline(__always) private func isUnicodeWhitespace(_ v: UInt32) -> Bool {
    switch v {
    case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
        return true
    default:
        return false
    }
}

// MARK: - BERT uncased (BertNormalizer + BertPreTokenizer)

private func isChineseChar(_ v: UInt32) -> Bool {
    switch v {
    case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
         0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
        return true
    default:
        return false
    }
}

private func isBertPunctuation(_ v: UInt32) -> Bool {
    if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) {
        return true
    }
    return (12...18).contains(category(v))
}

/// BertNormalizer(clean_text, handle_chinese_chars, strip_accents, lowercase) followed by
/// BertPreTokenizer, as HuggingFace's `BertWordPieceTokenizer(lowercase=True)`.
let bertUncasedWords: WordCounter.Splitter = { text in
    // clean text + CJK spacing
    var cleaned = String.UnicodeScalarView()
    for s in text.unicodeScalars {
        let v = s.value
        if v == 0 || v == 0xFFFD { continue }
        let isWhitespace = v == 0x20 || v == 0x09 || v == 0x0A || v == 0x0D || category(v) == 23
        if isWhitespace {
            cleaned.append(" ")
            continue
        }
        if (26...29).contains(category(v)) || category(v) == 0 { continue }  // Cc Cf Cs Co Cn
        if isChineseChar(v) {
            cleaned.append(" "); cleaned.append(s); cleaned.append(" ")
        } else {
            cleaned.append(s)
        }
    }
    // NFD, drop Mn, lowercase
    var nfd = String(cleaned)
    let decomposed: String = nfd.withUTF8 { bytes -> String in
        var result: UnsafeMutablePointer<UInt8>? = nil
        let n = utf8proc_map(bytes.baseAddress, bytes.count, &result, UTF8PROC_DECOMPOSE)
        defer { free(result) }
        guard n >= 0, let result else { return String(decoding: bytes, as: UTF8.self) }
        return String(decoding: UnsafeBufferPointer(start: result, count: n), as: UTF8.self)
    }
    var words: [String] = []
    var current = String.UnicodeScalarView()
    func flush() {
        if !current.isEmpty {
            words.append(String(current))
            current = String.UnicodeScalarView()
        }
    }
    for s in decomposed.unicodeScalars {
        let v = s.value
        if category(v) == 6 { continue }  // Mn
        let lower: Unicode.Scalar = Unicode.Scalar(UInt32(utf8proc_tolower(Int32(bitPattern: v)))) ?? s
        let lv = lower.value
        if isUnicodeWhitespace(lv) {
            flush()
        } else if isBertPunctuation(lv) {
            flush()
            words.append(String(lower))
        } else {
            current.append(lower)
        }
    }
    flush()
    return words
}

// MARK: - GPT-2 byte level

/// GPT-2's split pattern `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
/// each piece's UTF-8 bytes mapped to the printable byte alphabet.
let byteLevelWords: WordCounter.Splitter = { text in
    let scalars = Array(text.unicodeScalars.map { $0.value })
    let n = scalars.count
    var pieces: [String] = []
    var i = 0
    func isOther(_ v: UInt32) -> Bool { !isUnicodeWhitespace(v) && !isLetter(v) && !isNumber(v) }
    func run(from j: Int, _ pred: (UInt32) -> Bool) -> Int {
        var k = j
        while k < n && pred(scalars[k]) { k += 1 }
        return k
    }
    func emit(_ lo: Int, _ hi: Int) {
        var s = String.UnicodeScalarView()
        for v in scalars[lo..<hi] { s.append(Unicode.Scalar(v)!) }
        pieces.append(TrainerByteAlphabet.encode(String(s).utf8))
    }
    while i < n {
        let c = scalars[i]
        // contractions
        if c == 0x27 && i + 1 < n {
            let c1 = scalars[i + 1]
            if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 {  // s t m d
                emit(i, i + 2); i += 2; continue
            }
            if i + 2 < n {
                let c2 = scalars[i + 2]
                if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) {
                    emit(i, i + 3); i += 3; continue
                }
            }
        }
        // ?\p{L}+  ?\p{N}+  ?[^\s\p{L}\p{N}]+ (a leading space only when followed by the class)
        let hasSpace = c == 0x20 && i + 1 < n
        var matched = false
        for pred in [isLetter, isNumber, isOther] as [(UInt32) -> Bool] {
            if hasSpace && pred(scalars[i + 1]) {
                let end = run(from: i + 1, pred); emit(i, end); i = end; matched = true; break
            }
            if pred(c) {
                let end = run(from: i, pred); emit(i, end); i = end; matched = true; break
            }
        }
        if matched { continue }
        // \s+(?!\S) | \s+
        if isUnicodeWhitespace(c) {
            let end = run(from: i, isUnicodeWhitespace)
            if end == n || end - i == 1 {
                emit(i, end); i = end
            } else {
                emit(i, end - 1); i = end - 1
            }
            continue
        }
        // Unreachable: every scalar is a letter, number, whitespace or other.
        emit(i, i + 1); i += 1
    }
    return pieces
}

// MARK: - Token counting

/// Utility vocabularies keyed by exact bytes.
struct ByteVocab {
    var ids: [[UInt8]: Int] = [:]
    init<S: Sequence>(_ tokens: S) where S.Element == String {
        for (i, t) in tokens.enumerated() where ids[Array(t.utf8)] == nil { ids[Array(t.utf8)] = i }
    }
    init(map: [String: Int]) {
        for (t, i) in map { ids[Array(t.utf8)] = i }
    }
}

/// Tokens greedy longest-match WordPiece gives for all words (`[UNK]` = one token), HF rules:
/// words over 100 characters and words with an unmatched piece are one `[UNK]`.
func wordPieceTokenCount(_ counts: WordCounts, vocab: ByteVocab, prefix: String = "##") -> Int {
    let prefixBytes = Array(prefix.utf8)
    var total = 0
    counts.forEach { word, count in
        let scalars = Array(word.unicodeScalars)
        if scalars.count > 100 { total += count; return }
        var offsets: [Int] = [0]
        for s in scalars { offsets.append(offsets.last! + String(s).utf8.count) }
        let bytes = Array(word.utf8)
        var start = 0
        var pieces = 0
        while start < scalars.count {
            var end = scalars.count
            var found = false
            while start < end {
                var piece = start > 0 ? prefixBytes : []
                piece.append(contentsOf: bytes[offsets[start]..<offsets[end]])
                if vocab.ids[piece] != nil { found = true; break }
                end -= 1
            }
            if !found { pieces = 1; break }
            pieces += 1
            start = end
        }
        total += pieces * count
    }
    return total
}

/// Tokens ranked-merge BPE gives for all words (characters not in the vocabulary count as one
/// token each, which does not happen with a byte-level alphabet).
func bpeTokenCount(_ counts: WordCounts, vocab: ByteVocab, merges: [(String, String)]) -> Int {
    var rank: [UInt64: (Int, Int)] = [:]
    for (r, (a, b)) in merges.enumerated() {
        guard let ia = vocab.ids[Array(a.utf8)], let ib = vocab.ids[Array(b.utf8)],
              let inew = vocab.ids[Array((a + b).utf8)] else { continue }
        let key = packPair(Int32(ia), Int32(ib))
        if rank[key] == nil { rank[key] = (r, inew) }
    }
    var total = 0
    counts.forEach { word, count in
        var symbols = word.unicodeScalars.map { vocab.ids[Array(String($0).utf8)] ?? -1 }
        while symbols.count > 1 {
            var best = Int.max, bestAt = -1, bestNew = 0
            for k in 0..<(symbols.count - 1) {
                if let (r, n) = rank[packPair(Int32(symbols[k]), Int32(symbols[k + 1]))], r < best {
                    best = r; bestAt = k; bestNew = n
                }
            }
            if bestAt < 0 { break }
            symbols[bestAt] = bestNew
            symbols.remove(at: bestAt + 1)
        }
        total += symbols.count * count
    }
    return total
}

/// The vocabulary (token -> id) and merges of a HuggingFace tokenizer.json.
func loadHFModel(_ url: URL) throws -> (vocab: [String: Int], merges: [(String, String)]) {
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    let model = json["model"] as! [String: Any]
    let vocab = (model["vocab"] as! [String: Any]).mapValues { ($0 as! NSNumber).intValue }
    var merges: [(String, String)] = []
    for m in (model["merges"] as? [Any]) ?? [] {
        if let pair = m as? [String] {
            merges.append((pair[0], pair[1]))
        } else if let s = m as? String, let space = s.firstIndex(of: " ") {
            merges.append((String(s[..<space]), String(s[s.index(after: space)...])))
        }
    }
    return (vocab, merges)
}
