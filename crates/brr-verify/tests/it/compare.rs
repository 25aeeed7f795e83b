//! `compare`: every added, removed and changed file, a text diff or the first differing byte.

use brr_verify::compare::{ChangeKind, Difference, compare};

use crate::Node::{Dir, Exec, File};
use crate::{store, tree};

/// The differences as (path, change) pairs, in the order reported.
fn summary(diffs: &[Difference]) -> Vec<(&str, ChangeKind)> {
    diffs.iter().map(|d| (d.path.as_str(), d.change)).collect()
}

#[test]
fn identical_trees_have_no_differences() {
    let (_dir, store) = store();
    let nodes = || vec![("a", File(b"same\n")), ("d", Dir(vec![("b", Exec(b"#!/bin/sh\n"))]))];
    let (a, b) = (tree(&store, nodes()), tree(&store, nodes()));
    assert_eq!(a, b);
    assert_eq!(compare(&store, a, b).unwrap(), []);
}

#[test]
fn added_removed_and_changed_files_are_all_reported_with_sizes() {
    let (_dir, store) = store();
    let a = tree(
        &store,
        vec![
            ("same", File(b"x")),
            ("gone", File(b"12345")),
            ("sub", Dir(vec![("changed.txt", File(b"one\ntwo\nthree\n")), ("kept", File(b"k"))])),
        ],
    );
    let b = tree(
        &store,
        vec![
            ("same", File(b"x")),
            ("new", File(b"123")),
            ("sub", Dir(vec![("changed.txt", File(b"one\n2\nthree\n")), ("kept", File(b"k"))])),
        ],
    );
    let diffs = compare(&store, a, b).unwrap();
    assert_eq!(
        summary(&diffs),
        [("gone", ChangeKind::Removed), ("new", ChangeKind::Added), ("sub/changed.txt", ChangeKind::Changed)]
    );
    assert_eq!((diffs[0].size_before, diffs[0].size_after), (Some(5), None));
    assert_eq!((diffs[1].size_before, diffs[1].size_after), (None, Some(3)));
    let changed = &diffs[2];
    assert_eq!((changed.size_before, changed.size_after), (Some(14), Some(12)));
    assert_eq!(changed.first_difference_offset, None);
    assert_eq!(changed.kinds, None);
    let diff = changed.diff.as_deref().expect("a text diff");
    let lines: Vec<&str> = diff.lines().collect();
    assert_eq!(lines[..2], ["--- first round", "+++ other round"]);
    assert!(lines.contains(&"-two") && lines.contains(&"+2"), "{diff}");
    assert!(lines.contains(&" one") && lines.contains(&" three"), "context kept: {diff}");
}

#[test]
fn binaries_get_the_first_differing_byte_instead_of_a_diff() {
    let (_dir, store) = store();
    let a = tree(&store, vec![("bin", File(b"\x7fELF\0\x01\x02\x03")), ("short", File(b"\0abc"))]);
    let b = tree(&store, vec![("bin", File(b"\x7fELF\0\x01\xff\x03")), ("short", File(b"\0abcdef"))]);
    let diffs = compare(&store, a, b).unwrap();
    assert_eq!(summary(&diffs), [("bin", ChangeKind::Changed), ("short", ChangeKind::Changed)]);
    assert_eq!((diffs[0].first_difference_offset, diffs[0].diff.as_deref()), (Some(6), None));
    // One a prefix of the other: they differ where the shorter one ends.
    assert_eq!(diffs[1].first_difference_offset, Some(4));
    assert_eq!((diffs[1].size_before, diffs[1].size_after), (Some(4), Some(7)));
}

#[test]
fn invalid_utf8_and_large_text_count_as_binary() {
    let (_dir, store) = store();
    let big_a = "line\n".repeat(300_000); // 1.5 MB, over the text limit
    let mut big_b = big_a.clone().into_bytes();
    big_b[1_000_001] = b'X';
    let a = tree(&store, vec![("big", File(big_a.as_bytes())), ("latin1", File(b"caf\xe9 1"))]);
    let b = tree(&store, vec![("big", File(&big_b)), ("latin1", File(b"caf\xe9 2"))]);
    let diffs = compare(&store, a, b).unwrap();
    assert_eq!(diffs[0].first_difference_offset, Some(1_000_001));
    assert_eq!(diffs[1].first_difference_offset, Some(5));
    assert!(diffs.iter().all(|d| d.diff.is_none()));
}

#[test]
fn long_diffs_are_cut_and_say_so() {
    let (_dir, store) = store();
    let lines = |prefix: &str| (0..100).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>().join("\n");
    let (before, after) = (lines("a"), lines("b"));
    let a = tree(&store, vec![("t", File(before.as_bytes()))]);
    let b = tree(&store, vec![("t", File(after.as_bytes()))]);
    let diff = compare(&store, a, b).unwrap().remove(0).diff.unwrap();
    let lines: Vec<&str> = diff.lines().collect();
    assert_eq!(lines.len(), 41, "{diff}");
    assert_eq!(lines[40], "… (diff truncated)");
}

#[test]
fn a_mode_change_alone_is_a_change_of_kind() {
    let (_dir, store) = store();
    let a = tree(&store, vec![("run", File(b"#!/bin/sh\n"))]);
    let b = tree(&store, vec![("run", Exec(b"#!/bin/sh\n"))]);
    let diffs = compare(&store, a, b).unwrap();
    assert_eq!(summary(&diffs), [("run", ChangeKind::Changed)]);
    assert_eq!(diffs[0].kinds, Some(("file".to_owned(), "executable".to_owned())));
    assert_eq!((diffs[0].diff.as_deref(), diffs[0].first_difference_offset), (None, None));
}

#[test]
fn folders_are_walked_and_a_file_replaced_by_a_folder_is_both() {
    let (_dir, store) = store();
    let a = tree(&store, vec![("old", Dir(vec![("x", File(b"1")), ("y", File(b"2"))])), ("swap", File(b"f"))]);
    let b = tree(&store, vec![("swap", Dir(vec![("inner", File(b"i"))]))]);
    let diffs = compare(&store, a, b).unwrap();
    assert_eq!(
        summary(&diffs),
        [
            ("old/x", ChangeKind::Removed),
            ("old/y", ChangeKind::Removed),
            ("swap/inner", ChangeKind::Added),
            ("swap", ChangeKind::Removed),
        ]
    );
}
