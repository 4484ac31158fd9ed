import GraftSupport
import Foundation

/// Reading and writing tokenizers: HuggingFace `tokenizer.json`, BERT `vocab.txt`, and GPT-2's
/// `encoder.json` + `vocab.bpe`.
extension Tokenizer {
    // MARK: Loading

    /// Loads a tokenizer from a `tokenizer.json` file, or from a directory holding one
    /// (or a `vocab.txt`, or `encoder.json` + `vocab.bpe`).
    public static func load(from path: String) throws -> Tokenizer {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw TokenizerError.io(path: path, reason: "no such file or directory")
        }
        if isDir.boolValue {
            let dir = URL(fileURLWithPath: path)
            let json = dir.appendingPathComponent("tokenizer.json").path
            let vocabTxt = dir.appendingPathComponent("vocab.txt").path
            let encoder = dir.appendingPathComponent("encoder.json").path
            let bpeMerges = dir.appendingPathComponent("vocab.bpe").path
            let fm = FileManager.default
            if fm.fileExists(atPath: json) { return try fromJSONFile(json) }
            if fm.fileExists(atPath: vocabTxt) { return try bert(vocabFile: vocabTxt) }
            if fm.fileExists(atPath: encoder) && fm.fileExists(atPath: bpeMerges) {
                return try gpt2(encoderFile: encoder, mergesFile: bpeMerges)
            }
            throw TokenizerError.io(path: path, reason: "no tokenizer.json, vocab.txt, or encoder.json + vocab.bpe in this directory")
        }
        if path.hasSuffix(".txt") { return try bert(vocabFile: path) }
        return try fromJSONFile(path)
    }

    /// Reads a whole file as bytes, validating UTF-8.
    static func readUTF8(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerError.io(path: path, reason: "cannot read file")
        }
        let bytes = [UInt8](data)
        if let bad = UTF8Validation.firstInvalidByte(bytes) {
            throw TokenizerError.invalidUTF8(path: path, byteOffset: bad)
        }
        return bytes
    }

    /// Loads a HuggingFace `tokenizer.json`.
    public static func fromJSONFile(_ path: String) throws -> Tokenizer {
        let json = try TokenizerError.wrapping { try JSONValue.parse(readUTF8(path), path: path) }
        return try fromJSON(json, path: path)
    }

    /// Builds a tokenizer from a parsed `tokenizer.json`.
    public static func fromJSON(_ json: JSONValue, path: String = "tokenizer.json") throws -> Tokenizer {
        func bad(_ reason: String) -> TokenizerError { .malformed(path: path, line: nil, reason: reason) }
        guard case .object = json else { throw bad("the top level is not a JSON object") }
        guard let modelJSON = json["model"], case .object = modelJSON else { throw bad("missing \"model\"") }
        guard modelJSON["vocab"]?.object != nil else { throw bad("the model lacks a \"vocab\" object") }

        // Every id in the file must name a token the file holds: the vocabulary's entries plus
        // the added tokens. Checked before anything is allocated or converted to Int32.
        let addedItems = json["added_tokens"]?.array ?? []
        let idLimit = (modelJSON["vocab"]?.object?.count ?? 0) + addedItems.count
        func tokenID(_ v: JSONValue?, _ key: String, default d: Int? = nil) throws -> Int32 {
            try checkedID(v, key: key, limit: idLimit, default: d, bad)
        }
        func sequenceLength(_ v: JSONValue?, _ key: String, limit: Int = maxSequenceLength) throws -> Int? {
            guard let v, !v.isNull else { return nil }
            guard let n = v.int, n >= 0, n <= limit else {
                throw bad("\(key) \(v.serialized()) is not a length in 0...\(limit)")
            }
            return n
        }
        var added: [AddedToken] = []
        for item in addedItems {
            guard let content = item["content"]?.string, item["id"] != nil else { throw bad("an added token lacks \"content\" or \"id\"") }
            guard !content.isEmpty else { throw bad("an added token (id \(item["id"]!.serialized())) has empty \"content\"") }
            let id = try tokenID(item["id"], "added_tokens[\(JSONValue.quoted(content))].id")
            added.append(AddedToken(content: content, id: id, special: item["special"]?.bool ?? false,
                                    normalized: item["normalized"]?.bool ?? false, singleWord: item["single_word"]?.bool ?? false,
                                    lstrip: item["lstrip"]?.bool ?? false, rstrip: item["rstrip"]?.bool ?? false))
        }
        let normalizer = try json["normalizer"].flatMap { $0.isNull ? nil : try parseNormalizer($0, bad) }
        let preTokenizer = try json["pre_tokenizer"].flatMap { $0.isNull ? nil : try parsePreTokenizer($0, bad) }
        let model = try parseModel(modelJSON, idLimit: idLimit, bad)
        let post = try json["post_processor"].flatMap { $0.isNull ? nil : try parsePostProcessor($0, added: added, vocab: model.vocab, idLimit: idLimit, bad) }
        let decoder = try json["decoder"].flatMap { $0.isNull ? nil : try parseDecoder($0, bad) }

        var truncation: Truncation? = nil
        if let t = json["truncation"], !t.isNull {
            guard let maxLength = try sequenceLength(t["max_length"], "truncation.max_length") else { throw bad("truncation lacks \"max_length\"") }
            let strategy: Truncation.Strategy
            switch t["strategy"]?.string ?? "LongestFirst" {
            case "LongestFirst": strategy = .longestFirst
            case "OnlyFirst": strategy = .onlyFirst
            case "OnlySecond": strategy = .onlySecond
            case let s: throw bad("unknown truncation strategy \(s)")
            }
            truncation = Truncation(maxLength: maxLength, strategy: strategy, stride: try sequenceLength(t["stride"], "truncation.stride") ?? 0,
                                    fromLeft: t["direction"]?.string == "Left")
        }
        var padding: Padding? = nil
        if let p = json["padding"], !p.isNull {
            var length = Padding.Length.longest
            if let fixed = try sequenceLength(p["strategy"]?["Fixed"], "padding.strategy.Fixed", limit: maxPaddedLength) { length = .fixed(fixed) }
            padding = Padding(length: length, multipleOf: try sequenceLength(p["pad_to_multiple_of"], "padding.pad_to_multiple_of",
                                                                             limit: maxPaddedLength),
                              padId: try tokenID(p["pad_id"], "padding.pad_id", default: 0),
                              padTypeId: try checkedID(p["pad_type_id"], key: "padding.pad_type_id", limit: maxTypeID, default: 0, bad), padToken: p["pad_token"]?.string ?? "[PAD]",
                              left: p["direction"]?.string == "Left")
        }
        return Tokenizer(normalizer: normalizer, preTokenizer: preTokenizer, model: model, postProcessor: post,
                         decoder: decoder, addedTokens: added, truncation: truncation, padding: padding)
    }

    static func parseNormalizer(_ j: JSONValue, _ bad: (String) -> TokenizerError) throws -> Normalizer {
        guard let type = j["type"]?.string else { throw bad("a normalizer lacks \"type\"") }
        switch type {
        case "BertNormalizer":
            let strip: Bool? = j["strip_accents"].flatMap { $0.isNull ? nil : $0.bool }
            return .bert(BertNormalizerOptions(cleanText: j["clean_text"]?.bool ?? true,
                                               handleChineseChars: j["handle_chinese_chars"]?.bool ?? true,
                                               stripAccents: strip, lowercase: j["lowercase"]?.bool ?? true))
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "StripAccents": return .stripAccents
        case "Strip": return .strip(left: j["strip_left"]?.bool ?? true, right: j["strip_right"]?.bool ?? true)
        case "Sequence":
            return .sequence(try (j["normalizers"]?.array ?? []).map { try parseNormalizer($0, bad) })
        default: throw bad("unsupported normalizer type \(type)")
        }
    }

    static func parsePreTokenizer(_ j: JSONValue, _ bad: (String) -> TokenizerError) throws -> PreTokenizer {
        guard let type = j["type"]?.string else { throw bad("a pre-tokenizer lacks \"type\"") }
        switch type {
        case "BertPreTokenizer": return .bert
        case "Whitespace": return .whitespace
        case "WhitespaceSplit": return .whitespaceSplit
        case "ByteLevel": return .byteLevel(addPrefixSpace: j["add_prefix_space"]?.bool ?? false, useRegex: j["use_regex"]?.bool ?? true)
        case "Digits": return .digits(individual: j["individual_digits"]?.bool ?? false)
        case "Sequence":
            return .sequence(try (j["pretokenizers"]?.array ?? []).map { try parsePreTokenizer($0, bad) })
        default: throw bad("unsupported pre-tokenizer type \(type)")
        }
    }

    /// The longest sequence length (truncation, padding) a tokenizer file may ask for.
    static let maxSequenceLength = 1 << 24
    /// The longest length padding may ask for: every encoding is padded to it, so it multiplies
    /// the memory of a batch (a `Fixed` of 16 million took 1.8 GB for one line).
    static let maxPaddedLength = 1 << 16
    /// Token type ids are segment numbers: small.
    static let maxTypeID = 1 << 16

    /// An id read from a tokenizer file: an integer in `0..<limit` (the number of tokens the
    /// file defines), else an error naming the key and the value. `default` when absent.
    static func checkedID(_ v: JSONValue?, key: String, limit: Int, default d: Int? = nil,
                          _ bad: (String) -> TokenizerError) throws -> Int32 {
        guard let v, !v.isNull else {
            if let d { return Int32(d) }
            throw bad("missing \(key)")
        }
        guard let id = v.int, id >= 0, id < limit, id <= Int(Int32.max) else {
            throw bad("\(key) is \(v.serialized()), not an id in 0..<\(limit) (the file defines \(limit) tokens)")
        }
        return Int32(id)
    }

    /// `idLimit`: ids must be below it (the vocabulary's entries plus the added tokens).
    static func parseVocab(_ j: JSONValue?, idLimit: Int? = nil, _ bad: (String) -> TokenizerError) throws -> Vocabulary {
        guard let members = j?.object else { throw bad("the model lacks a \"vocab\" object") }
        let limit = idLimit ?? members.count
        var pairs: [(String, Int)] = []
        pairs.reserveCapacity(members.count)
        var owner: [Int32: String] = [:]
        for (token, idValue) in members {
            let id = try checkedID(idValue, key: "vocab[\(JSONValue.quoted(token))]", limit: limit, bad)
            // One token per id: decoding could not tell the two apart.
            if let other = owner.updateValue(token, forKey: id) {
                throw bad("the vocab gives id \(id) to both \(JSONValue.quoted(other)) and \(JSONValue.quoted(token))")
            }
            pairs.append((token, Int(id)))
        }
        return try Vocabulary(pairs: pairs)
    }

    static func parseModel(_ j: JSONValue, idLimit: Int, _ bad: (String) -> TokenizerError) throws -> TokenizerModel {
        do { return try parseModelEntries(j, idLimit: idLimit, bad) } catch TokenizerError.unknownToken(let token) {
            throw bad("the model names \(JSONValue.quoted(token)) (in its merges or as unk_token), which is not in its vocab")
        }
    }

    private static func parseModelEntries(_ j: JSONValue, idLimit: Int, _ bad: (String) -> TokenizerError) throws -> TokenizerModel {
        // Strings where the format has strings (or null): an id where a token belongs is an error, not the default.
        for key in ["type", "unk_token", "continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = j[key], !v.isNull, v.string == nil { throw bad("model.\(key) is \(v.serialized().prefix(40)), not a string") }
        }
        let type = j["type"]?.string ?? (j["merges"] != nil ? "BPE" : "WordPiece")
        let vocab = try parseVocab(j["vocab"], idLimit: idLimit, bad)
        switch type {
        case "WordPiece":
            let maxChars = j["max_input_chars_per_word"]?.int ?? 100
            guard maxChars >= 1 else { throw bad("model.max_input_chars_per_word \(maxChars) must be at least 1") }
            return .wordPiece(try WordPiece(vocab: vocab, unkToken: j["unk_token"]?.string ?? "[UNK]",
                                            continuingSubwordPrefix: j["continuing_subword_prefix"]?.string ?? "##",
                                            maxInputCharsPerWord: maxChars))
        case "BPE":
            if let d = j["dropout"]?.double, d > 0 { throw bad("BPE dropout is not supported") }
            if j["byte_fallback"]?.bool == true { throw bad("BPE byte_fallback is not supported") }
            var merges: [(String, String)] = []
            for (k, m) in (j["merges"]?.array ?? []).enumerated() {
                if let s = m.string {
                    let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                    guard parts.count == 2 else { throw bad("merge \(k) (\(JSONValue.quoted(s))) is not two tokens separated by one space") }
                    merges.append((String(parts[0]), String(parts[1])))
                } else if let a = m.array, a.count == 2, let l = a[0].string, let r = a[1].string {
                    merges.append((l, r))
                } else {
                    throw bad("merge \(k) is neither \"a b\" nor [\"a\", \"b\"]")
                }
            }
            return .bpe(try BPE(vocab: vocab, merges: merges, unkToken: j["unk_token"]?.string,
                                continuingSubwordPrefix: j["continuing_subword_prefix"]?.string ?? "",
                                endOfWordSuffix: j["end_of_word_suffix"]?.string ?? ""))
        default:
            throw bad("unsupported model type \(type)")
        }
    }

    static func parsePostProcessor(_ j: JSONValue, added: [AddedToken], vocab: Vocabulary, idLimit: Int,
                                   _ bad: (String) -> TokenizerError) throws -> PostProcessor {
        guard let type = j["type"]?.string else { throw bad("a post-processor lacks \"type\"") }
        func special(_ v: JSONValue?) throws -> PostProcessor.SpecialToken {
            guard let a = v?.array, a.count == 2, let t = a[0].string else { throw bad("a special token must be [\"token\", id]") }
            return .init(t, try checkedID(a[1], key: "post_processor special token \(JSONValue.quoted(t))", limit: idLimit, bad))
        }
        switch type {
        case "BertProcessing":
            return .bert(cls: try special(j["cls"]), sep: try special(j["sep"]))
        case "ByteLevel":
            return .byteLevel(trimOffsets: j["trim_offsets"]?.bool ?? true)
        case "TemplateProcessing":
            var specials: [String: Int32] = [:]
            for (name, v) in j["special_tokens"]?.object ?? [] {
                guard let first = v["ids"]?.array?.first else { throw bad("template special token \(name) lacks ids") }
                specials[name] = try checkedID(first, key: "post_processor.special_tokens[\(JSONValue.quoted(name))].ids", limit: idLimit, bad)
            }
            func pieces(_ v: JSONValue?) throws -> [PostProcessor.TemplatePiece] {
                try (v?.array ?? []).map { p in
                    if let s = p["SpecialToken"] {
                        guard let name = s["id"]?.string else { throw bad("template SpecialToken lacks id") }
                        guard let id = specials[name] ?? vocab.id(name).map(Int32.init) else {
                            throw bad("post_processor template names \(JSONValue.quoted(name)), which is neither in its special_tokens nor in the vocab")
                        }
                        return .special(.init(name, id), typeId: try checkedID(s["type_id"], key: "template type_id", limit: maxTypeID, default: 0, bad))
                    }
                    if let s = p["Sequence"] {
                        return .sequence(s["id"]?.string == "B" ? 1 : 0, typeId: try checkedID(s["type_id"], key: "template type_id", limit: maxTypeID, default: 0, bad))
                    }
                    throw bad("unknown template piece")
                }
            }
            return .template(single: try pieces(j["single"]), pair: try pieces(j["pair"]))
        default:
            throw bad("unsupported post-processor type \(type)")
        }
    }

    static func parseDecoder(_ j: JSONValue, _ bad: (String) -> TokenizerError) throws -> Decoder {
        switch j["type"]?.string {
        case "WordPiece": return .wordPiece(prefix: j["prefix"]?.string ?? "##", cleanup: j["cleanup"]?.bool ?? true)
        case "ByteLevel": return .byteLevel
        case let t: throw bad("unsupported decoder type \(t ?? "(none)")")
        }
    }

    // MARK: Standard pipelines

    /// BERT WordPiece from a `vocab.txt` (one token per line, id = line number), with the
    /// bert-base-uncased pipeline (`lowercase: false` gives the cased one).
    public static func bert(vocabFile: String, lowercase: Bool = true, stripAccents: Bool? = nil) throws -> Tokenizer {
        let bytes = try readUTF8(vocabFile)
        var tokens: [String] = []
        var start = 0
        for i in 0...bytes.count where i == bytes.count || bytes[i] == 10 {
            var end = i
            if end > start && bytes[end - 1] == 13 { end -= 1 }
            if !(i == bytes.count && start == i) { tokens.append(String(decoding: bytes[start..<end], as: UTF8.self)) }
            start = i + 1
        }
        do {
            return try bert(vocab: Vocabulary(tokens: tokens), lowercase: lowercase, stripAccents: stripAccents)
        } catch TokenizerError.unknownToken(let token) {
            throw TokenizerError.malformed(path: vocabFile, line: nil, reason: "lacks \(token), which BERT's WordPiece pipeline needs (one token per line)")
        }
    }

    /// BERT WordPiece over a vocabulary holding `[PAD] [UNK] [CLS] [SEP] [MASK]`.
    public static func bert(vocab: Vocabulary, lowercase: Bool = true, stripAccents: Bool? = nil) throws -> Tokenizer {
        var added: [AddedToken] = []
        for name in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] {
            if let id = vocab.id(name) { added.append(AddedToken(content: name, id: Int32(id))) }
        }
        guard let cls = vocab.id("[CLS]"), let sep = vocab.id("[SEP]") else { throw TokenizerError.unknownToken("[CLS]/[SEP]") }
        return Tokenizer(normalizer: .bert(BertNormalizerOptions(stripAccents: stripAccents, lowercase: lowercase)),
                         preTokenizer: .bert, model: .wordPiece(try WordPiece(vocab: vocab)),
                         postProcessor: .bert(cls: .init("[CLS]", Int32(cls)), sep: .init("[SEP]", Int32(sep))),
                         decoder: .wordPiece(prefix: "##", cleanup: true), addedTokens: added)
    }

    /// GPT-2 byte-level BPE from `encoder.json` and `vocab.bpe`.
    public static func gpt2(encoderFile: String, mergesFile: String) throws -> Tokenizer {
        let encoder = try TokenizerError.wrapping { try JSONValue.parse(readUTF8(encoderFile), path: encoderFile) }
        let vocab = try parseVocab(encoder) { .malformed(path: encoderFile, line: nil, reason: $0) }
        let bytes = try readUTF8(mergesFile)
        var merges: [(String, String)] = []
        var lineNumber = 0
        for line in bytes.split(separator: 10, omittingEmptySubsequences: false) {
            lineNumber += 1
            var l = line
            if l.last == 13 { l = l.dropLast() }
            if l.isEmpty || (lineNumber == 1 && l.starts(with: Array("#version".utf8))) { continue }
            let parts = l.split(separator: 32, omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw TokenizerError.malformed(path: mergesFile, line: lineNumber, reason: "a merge line must be two tokens separated by one space")
            }
            merges.append((String(decoding: parts[0], as: UTF8.self), String(decoding: parts[1], as: UTF8.self)))
        }
        guard vocab.count > 0 else { throw TokenizerError.malformed(path: encoderFile, line: nil, reason: "the vocabulary is empty") }
        do { return gpt2(model: try BPE(vocab: vocab, merges: merges), addedTokens: []) } catch TokenizerError.unknownToken(let token) {
            let line = merges.firstIndex { $0.0 == token || $0.1 == token }.map { $0 + 1 }
            throw TokenizerError.malformed(path: mergesFile, line: nil,
                                           reason: "merge \(line.map(String.init) ?? "?") names \(JSONValue.quoted(token)), which \(encoderFile) does not hold")
        }
    }

    /// The GPT-2 byte-level pipeline around a BPE model.
    public static func gpt2(model: BPE, addedTokens: [AddedToken] = []) -> Tokenizer {
        Tokenizer(normalizer: nil, preTokenizer: .byteLevel(addPrefixSpace: false, useRegex: true), model: .bpe(model),
                  postProcessor: .byteLevel(trimOffsets: false), decoder: .byteLevel, addedTokens: addedTokens)
    }

    // MARK: Saving

    /// The HuggingFace `tokenizer.json` representation.
    public func toJSON() -> JSONValue {
        func b(_ v: Bool) -> JSONValue { .bool(v) }
        func n(_ v: Int) -> JSONValue { .number(Double(v)) }
        func s(_ v: String) -> JSONValue { .string(v) }
        var truncationJSON = JSONValue.null
        if let t = truncation {
            let strategy = ["longestFirst": "LongestFirst", "onlyFirst": "OnlyFirst", "onlySecond": "OnlySecond"][t.strategy.rawValue]!
            truncationJSON = .object([("direction", s(t.fromLeft ? "Left" : "Right")), ("max_length", n(t.maxLength)),
                                      ("strategy", s(strategy)), ("stride", n(t.stride))])
        }
        var paddingJSON = JSONValue.null
        if let p = padding {
            let strategy: JSONValue
            switch p.length {
            case .longest: strategy = s("BatchLongest")
            case .fixed(let len): strategy = .object([("Fixed", n(len))])
            }
            paddingJSON = .object([("strategy", strategy), ("direction", s(p.left ? "Left" : "Right")),
                                   ("pad_to_multiple_of", p.multipleOf.map(n) ?? .null), ("pad_id", n(Int(p.padId))),
                                   ("pad_type_id", n(Int(p.padTypeId))), ("pad_token", s(p.padToken))])
        }
        let added: [JSONValue] = addedTokens.sorted { $0.id < $1.id }.map {
            .object([("id", n(Int($0.id))), ("content", s($0.content)), ("single_word", b($0.singleWord)), ("lstrip", b($0.lstrip)),
                     ("rstrip", b($0.rstrip)), ("normalized", b($0.normalized)), ("special", b($0.special))])
        }
        func normalizerJSON(_ x: Normalizer) -> JSONValue {
            switch x {
            case .nfc: return .object([("type", s("NFC"))])
            case .nfd: return .object([("type", s("NFD"))])
            case .nfkc: return .object([("type", s("NFKC"))])
            case .nfkd: return .object([("type", s("NFKD"))])
            case .lowercase: return .object([("type", s("Lowercase"))])
            case .stripAccents: return .object([("type", s("StripAccents"))])
            case .cleanText:
                return normalizerJSON(.bert(BertNormalizerOptions(cleanText: true, handleChineseChars: false, stripAccents: false, lowercase: false)))
            case .cjkSpacing:
                return normalizerJSON(.bert(BertNormalizerOptions(cleanText: false, handleChineseChars: true, stripAccents: false, lowercase: false)))
            case .bert(let o):
                return .object([("type", s("BertNormalizer")), ("clean_text", b(o.cleanText)), ("handle_chinese_chars", b(o.handleChineseChars)),
                                ("strip_accents", o.stripAccents.map(b) ?? .null), ("lowercase", b(o.lowercase))])
            case .strip(let l, let r): return .object([("type", s("Strip")), ("strip_left", b(l)), ("strip_right", b(r))])
            case .sequence(let steps): return .object([("type", s("Sequence")), ("normalizers", .array(steps.map(normalizerJSON)))])
            }
        }
        func preJSON(_ x: PreTokenizer) -> JSONValue {
            switch x {
            case .bert: return .object([("type", s("BertPreTokenizer"))])
            case .whitespace: return .object([("type", s("Whitespace"))])
            case .whitespaceSplit: return .object([("type", s("WhitespaceSplit"))])
            case .byteLevel(let add, let useRegex):
                return .object([("type", s("ByteLevel")), ("add_prefix_space", b(add)), ("trim_offsets", b(true)), ("use_regex", b(useRegex))])
            case .digits(let individual): return .object([("type", s("Digits")), ("individual_digits", b(individual))])
            case .sequence(let steps): return .object([("type", s("Sequence")), ("pretokenizers", .array(steps.map(preJSON)))])
            }
        }
        var postJSON = JSONValue.null
        switch postProcessor {
        case .none: break
        case .bert(let cls, let sep)?:
            postJSON = .object([("type", s("BertProcessing")), ("sep", .array([s(sep.token), n(Int(sep.id))])),
                                ("cls", .array([s(cls.token), n(Int(cls.id))]))])
        case .byteLevel(let trim)?:
            postJSON = .object([("type", s("ByteLevel")), ("add_prefix_space", b(true)), ("trim_offsets", b(trim)), ("use_regex", b(true))])
        case .template(let single, let pair)?:
            var specials: [(String, JSONValue)] = []
            func pieces(_ ps: [PostProcessor.TemplatePiece]) -> JSONValue {
                .array(ps.map { p in
                    switch p {
                    case .special(let t, let typeId):
                        if !specials.contains(where: { $0.0 == t.token }) {
                            specials.append((t.token, .object([("id", s(t.token)), ("ids", .array([n(Int(t.id))])), ("tokens", .array([s(t.token)]))])))
                        }
                        return .object([("SpecialToken", .object([("id", s(t.token)), ("type_id", n(Int(typeId)))]))])
                    case .sequence(let which, let typeId):
                        return .object([("Sequence", .object([("id", s(which == 0 ? "A" : "B")), ("type_id", n(Int(typeId)))]))])
                    }
                })
            }
            let singleJSON = pieces(single), pairJSON = pieces(pair)
            postJSON = .object([("type", s("TemplateProcessing")), ("single", singleJSON), ("pair", pairJSON), ("special_tokens", .object(specials))])
        }
        var decoderJSON = JSONValue.null
        switch decoder {
        case .wordPiece(let prefix, let cleanup)?: decoderJSON = .object([("type", s("WordPiece")), ("prefix", s(prefix)), ("cleanup", b(cleanup))])
        case .byteLevel?: decoderJSON = .object([("type", s("ByteLevel")), ("add_prefix_space", b(true)), ("trim_offsets", b(true)), ("use_regex", b(true))])
        case .plain?, .none: break
        }
        let vocabJSON = JSONValue.object(vocab.tokens.enumerated().filter { !$0.element.isEmpty || $0.offset == 0 }.map { ($0.element, n($0.offset)) })
        let modelJSON: JSONValue
        switch model {
        case .wordPiece(let wp):
            modelJSON = .object([("type", s("WordPiece")), ("unk_token", s(wp.unkToken)), ("continuing_subword_prefix", s(wp.continuingSubwordPrefix)),
                                 ("max_input_chars_per_word", n(wp.maxInputCharsPerWord)), ("vocab", vocabJSON)])
        case .bpe(let bpe):
            modelJSON = .object([("type", s("BPE")), ("dropout", .null), ("unk_token", bpe.unkToken.map(s) ?? .null),
                                 ("continuing_subword_prefix", s(bpe.continuingSubwordPrefix)), ("end_of_word_suffix", s(bpe.endOfWordSuffix)),
                                 ("fuse_unk", b(false)), ("byte_fallback", b(false)), ("ignore_merges", b(false)), ("vocab", vocabJSON),
                                 ("merges", .array(bpe.merges.map { .array([s($0.0), s($0.1)]) }))])
        }
        return .object([("version", s("1.0")), ("truncation", truncationJSON), ("padding", paddingJSON), ("added_tokens", .array(added)),
                        ("normalizer", normalizer.map(normalizerJSON) ?? .null), ("pre_tokenizer", preTokenizer.map(preJSON) ?? .null),
                        ("post_processor", postJSON), ("decoder", decoderJSON), ("model", modelJSON)])
    }

    /// Writes `tokenizer.json` atomically (temporary file, then rename).
    public func save(to path: String, pretty: Bool = true) throws {
        try Tokenizer.writeAtomically(Array(toJSON().serialized(pretty: pretty).utf8), to: path)
    }

    /// Writes the vocabulary as `vocab.txt` (WordPiece) or `encoder.json` + `vocab.bpe` (BPE) in `directory`.
    public func saveVocabularyFiles(in directory: String) throws {
        let dir = URL(fileURLWithPath: directory)
        switch model {
        case .wordPiece(let wp):
            var out = [UInt8]()
            for t in wp.vocab.tokens { out += Array(t.utf8); out.append(10) }
            try Tokenizer.writeAtomically(out, to: dir.appendingPathComponent("vocab.txt").path)
        case .bpe(let bpe):
            let encoder = JSONValue.object(bpe.vocab.tokens.enumerated().map { ($0.element, .number(Double($0.offset))) })
            try Tokenizer.writeAtomically(Array(encoder.serialized().utf8), to: dir.appendingPathComponent("encoder.json").path)
            var out = Array("#version: 0.2\n".utf8)
            for (a, b) in bpe.merges { out += Array(a.utf8); out.append(32); out += Array(b.utf8); out.append(10) }
            try Tokenizer.writeAtomically(out, to: dir.appendingPathComponent("vocab.bpe").path)
        }
    }

    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        do { try AtomicFile.write(bytes, to: path) } catch let error as SupportError { throw TokenizerError(error) }
    }
}
