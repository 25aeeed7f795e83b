//! Integration tests of the supervisor with real processes.

mod router;
