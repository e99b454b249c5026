//! Plumb's HTTP API.
