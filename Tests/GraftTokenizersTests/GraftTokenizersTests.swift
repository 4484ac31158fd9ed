import Testing
@testable import GraftTokenizers
