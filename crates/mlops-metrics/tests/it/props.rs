//! Property tests: invariants every metric keeps.
