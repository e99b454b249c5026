//! Table tests of [`generate`](super::generate) over in-memory git trees and
//! cluster catalogs.
