import Testing
@testable import GraftCorpus
