/// What is added around the encoded sequence(s) after the model.
public enum PostProcessor: Sendable, Equatable {
    /// BERT: `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]`, type ids 0 for A (and its specials), 1 for B.
    case bert(cls: SpecialToken, sep: SpecialToken)
    /// A HuggingFace `TemplateProcessing` template.
    case template(single: [TemplatePiece], pair: [TemplatePiece])
    /// GPT-2 byte-level: nothing is added (offsets are not trimmed).
    case byteLevel(trimOffsets: Bool)

    public struct SpecialToken: Sendable, Equatable {
        public var token: String
        public var id: Int32
        public init(_ token: String, _ id: Int32) { self.token = token; self.id = id }
    }

    public enum TemplatePiece: Sendable, Equatable {
        /// A special token with its type id.
        case special(SpecialToken, typeId: Int32)
        /// Sequence A (0) or B (1) with its type id.
        case sequence(Int, typeId: Int32)
    }

    /// Number of tokens added to a single input or to a pair.
    public func addedTokens(pair: Bool) -> Int {
        switch self {
        case .bert: return pair ? 3 : 2
        case .template(let single, let pairTemplate):
            return (pair ? pairTemplate : single).filter { if case .special = $0 { return true } else { return false } }.count
        case .byteLevel: return 0
        }
    }

    /// Combines the encodings of the sequences (already truncated) with the special tokens.
    func process(_ a: Encoding, _ b: Encoding?, addSpecialTokens: Bool) -> Encoding {
        guard addSpecialTokens else {
            var out = a
            if var b {
                b.setTypeIds(1)
                out.append(contentsOf: b)
            }
            return out
        }
        let template: [TemplatePiece]
        switch self {
        case .byteLevel:
            var out = a
            if let b { out.append(contentsOf: b) }
            return out
        case .bert(let cls, let sep):
            template = b == nil
                ? [.special(cls, typeId: 0), .sequence(0, typeId: 0), .special(sep, typeId: 0)]
                : [.special(cls, typeId: 0), .sequence(0, typeId: 0), .special(sep, typeId: 0), .sequence(1, typeId: 1), .special(sep, typeId: 1)]
        case .template(let single, let pair):
            template = b == nil ? single : pair
        }
        var out = Encoding()
        out.reserveCapacity(a.count + (b?.count ?? 0) + template.count)
        for piece in template {
            switch piece {
            case .special(let t, let typeId):
                out.append(id: t.id, token: t.token, offset: 0..<0, word: nil, type: typeId, special: true, sequence: nil)
            case .sequence(let which, let typeId):
                if var s = which == 0 ? a : b {
                    s.setTypeIds(typeId)
                    out.append(contentsOf: s)
                }
            }
        }
        return out
    }
}
