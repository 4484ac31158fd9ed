/// Short, human-readable descriptions used by `graft tokenizer info`.
extension Normalizer: CustomStringConvertible {
    public var description: String {
        switch self {
        case .nfc: return "NFC"
        case .nfd: return "NFD"
        case .nfkc: return "NFKC"
        case .nfkd: return "NFKD"
        case .lowercase: return "lowercase"
        case .stripAccents: return "strip-accents"
        case .cleanText: return "clean-text"
        case .cjkSpacing: return "cjk-spacing"
        case .bert(let o):
            var parts: [String] = []
            if o.cleanText { parts.append("clean-text") }
            if o.handleChineseChars { parts.append("cjk-spacing") }
            if o.stripAccents ?? o.lowercase { parts.append("strip-accents") }
            if o.lowercase { parts.append("lowercase") }
            return "BERT (\(parts.joined(separator: ", ")))"
        case .strip(let l, let r): return "strip(\(l ? "left" : "")\(l && r ? "+" : "")\(r ? "right" : ""))"
        case .sequence(let steps): return steps.map(\.description).joined(separator: " → ")
        }
    }
}

extension PreTokenizer: CustomStringConvertible {
    public var description: String {
        switch self {
        case .bert: return "BERT (whitespace + punctuation)"
        case .whitespace: return "whitespace (\\w+|[^\\w\\s]+)"
        case .whitespaceSplit: return "whitespace split"
        case .byteLevel(let add, let regex): return "byte-level (GPT-2\(regex ? " split" : ", no split")\(add ? ", prefix space" : ""))"
        case .digits(let individual): return individual ? "digits (each alone)" : "digits (runs)"
        case .sequence(let steps): return steps.map(\.description).joined(separator: " → ")
        }
    }
}

extension PostProcessor: CustomStringConvertible {
    public var description: String {
        switch self {
        case .bert(let cls, let sep): return "\(cls.token) A \(sep.token) [B \(sep.token)]"
        case .template(let single, _):
            return single.map { p -> String in
                switch p {
                case .special(let t, _): return t.token
                case .sequence(let s, _): return s == 0 ? "A" : "B"
                }
            }.joined(separator: " ")
        case .byteLevel(let trim): return "byte-level (\(trim ? "trimmed" : "untrimmed") offsets)"
        }
    }
}
