/// GraftCorpus: the SQLite corpus store (documents, splits, annotations, token caches, runs).
import GRDB
import GraftTokenizers

/// Errors thrown by the corpus store.
public enum CorpusError: Error, Equatable {
    case notAGraftDatabase(String)
}
