import GraftSupport
import Testing
@testable import GraftTokenizers
