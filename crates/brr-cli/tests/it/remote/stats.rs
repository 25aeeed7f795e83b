//! `brr cache stats`: hits, misses and the time hits saved, kept in the store.

use brr_test_support::{sh_library, temp_dir};

use super::{build, key};
use crate::workspace;

#[test]
fn cache_stats_count_hits_misses_and_the_time_saved() {
    let dir = temp_dir();
    let url = format!("file://{}", dir.path().display());
    let (ka, kb) = (key("runner-a"), key("runner-b"));
    let script = |v: u32| format!("sleep 0.3; echo {v} > \"$OUT/f\"");
    // A builds v1 itself: a miss, with its builder's duration.
    let a = workspace().sh_lib("slow", &[], &["sleep"], &script(1));
    build(&a, &url, Some(&ka), &[&ka, &kb]).success();
    // B builds v2 and pushes it; A moves to v2 and fetches it: a hit.
    let b = workspace().sh_lib("slow", &[], &["sleep"], &script(2));
    build(&b, &url, Some(&kb), &[&ka, &kb]).success();
    a.write("p/slow/brr.ron", &sh_library("slow", &[], &["sleep"], &script(2)));
    let run = build(&a, &url, Some(&ka), &[&ka, &kb]).success();
    assert!(run.json()["targets"][0]["remote"] == true, "{}", run.stdout);
    // A local cache hit asks no remote: not a run of the statistics.
    build(&a, &url, Some(&ka), &[&ka, &kb]).success();

    let stats = a.brr(["cache", "stats", "--json"]).success().json();
    assert_eq!(stats["runs"], 2, "{stats:#}");
    assert_eq!((stats["hits"].as_u64(), stats["misses"].as_u64()), (Some(1), Some(1)), "{stats:#}");
    assert_eq!(stats["hit_rate"].as_f64(), Some(0.5), "{stats:#}");
    let slow = &stats["targets"]["slow"];
    assert_eq!((slow["hits"].as_u64(), slow["misses"].as_u64()), (Some(1), Some(1)), "{stats:#}");
    assert!(stats["saved_ms"].as_u64().is_some_and(|ms| ms >= 300), "{stats:#}");
    assert!(stats["bytes_down"].as_u64() > Some(0), "{stats:#}");
    let text = a.brr(["cache", "stats"]).success();
    assert!(text.stderr.contains("50% hit rate"), "{}", text.stderr);
}
