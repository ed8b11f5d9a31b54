//! Test harness: temporary directories, the archgate binary, real registries.
