//! Plumb's web UI, embedded.
