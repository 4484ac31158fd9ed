import Testing
@testable import GraftEngine
