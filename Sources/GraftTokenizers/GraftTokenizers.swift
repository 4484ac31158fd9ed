/// GraftTokenizers: normalizers, pre-tokenizers, WordPiece/BPE models, trainers and
/// post-processors with offsets into the original text.
import CUtf8proc
