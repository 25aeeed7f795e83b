//! Integration tests of brr-hash: the canonical encoding of every object kind.

mod canonical;
mod every_field;
mod golden;
mod samples;
