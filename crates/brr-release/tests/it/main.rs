//! Integration tests of the release stage on real stores (SQLite files) and
//! real release commands.

mod diff;
mod ledger;
mod release;
mod support;
