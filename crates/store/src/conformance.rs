//! The conformance suite: every case runs against every backend.
