//! The S3 backend against a real S3 server (moto) on 127.0.0.1: the same
//! contract as every backend.

use brr_remote::http::Timeouts;
use brr_remote::s3::{S3Signer, open_with};
use brr_test_support::MotoServer;

use crate::contract::check_backend;

#[test]
fn s3_backend_meets_the_contract_against_moto() {
    let Some(moto) = MotoServer::start() else { return };
    let signer = S3Signer::new("test-key", "test-secret", None, "us-east-1");
    let b = open_with(&moto.url("ci/cache"), Timeouts::default(), signer.clone()).unwrap();
    check_backend(&b);
    assert!(!format!("{b:?}").contains("test-secret"));
    // Another prefix is another cache.
    check_backend(&open_with(&moto.url("other"), Timeouts::default(), signer).unwrap());
}
