//! Tests of declaration parsing and the generated JSON Schema.

mod parse;
mod schema_drift;
