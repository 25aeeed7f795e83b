//! Tests of declaration parsing and the generated JSON Schema.

mod environments;
mod parse;
mod schema_drift;
