//! A real third-party C project no one here wrote: Lua 5.4, as bundled in
//! the `lupa` source distribution on PyPI, fetched by brr (from a mirror on
//! 127.0.0.1 holding what `scripts/test-deps.sh` downloaded with pip),
//! compiled by a brr builder, smoke-tested with Lua's own test files, and
//! compared with the interpreter Lua's own makefile builds.

use std::path::Path;
use std::process::Command;

use brr_test_support::{FETCH_FIXTURES_HINT, FileServer, TestWorkspace, fetch_fixtures_dir, require};

use crate::BRR;

const SDIST: &str = "lupa-2.8.tar.gz";
/// `brr hash` of a folder holding only the sdist.
const SDIST_HASH: &str = "fd63061ca76849449f0c20351dfaf1f1f4cc9aef5490520af27269ae1847e92c";
const LUA_DIR: &str = "lupa-2.8/third-party/lua54";

/// Lua's own tests whose output does not change from run to run (`math`
/// and `constructs` print random numbers, `sort` a timing: they are only
/// run).
const TESTS: &[&str] = &[
    "strings",
    "nextvar",
    "closure",
    "calls",
    "utf8",
    "tpack",
    "vararg",
    "events",
    "bitwise",
    "literals",
    "goto",
    "locals",
    "pm",
    "coroutine",
];
const RUN_ONLY: &[&str] = &["math", "constructs", "sort"];

/// Its makefile's C flags on Linux, without readline (not installed here)
/// and warnings.
const CFLAGS: &str = "-O2 -std=c99 -DLUA_USE_LINUX";

const BUILD_SH: &str = r#"set -eu
mkdir -p "$TMPDIR/src" "$TMPDIR/obj" "$OUT/bin"
tar --no-same-owner -xzf "$DEPS/lupa-sdist/lupa-2.8.tar.gz" -C "$TMPDIR/src" lupa-2.8/third-party/lua54
cd "$TMPDIR/src/lupa-2.8/third-party/lua54"
for f in lapi lcode lctype ldebug ldo ldump lfunc lgc llex lmem lobject lopcodes lparser lstate lstring \
         ltable ltm lundump lvm lzio lauxlib lbaselib lcorolib ldblib liolib lmathlib loadlib loslib \
         lstrlib ltablib lutf8lib linit lua; do
    cc $CFLAGS -c "$f.c" -o "$TMPDIR/obj/$f.o"
done
cc -o "$OUT/bin/lua" "$TMPDIR"/obj/*.o -lm -ldl -Wl,-E
cp -R testes "$OUT/testes"
"#;

/// Runs `lua -W NAME.lua` in `testes`; its exit status and output.
fn lua_test(lua: &Path, testes: &Path, name: &str) -> (bool, String) {
    let out = Command::new(lua).arg("-W").arg(format!("{name}.lua")).current_dir(testes).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn lua_from_a_pypi_sdist_builds_in_brr_and_behaves_as_its_own_makefile_build() {
    let dir = fetch_fixtures_dir();
    let sdist = dir.join(SDIST);
    let detail = format!("{SDIST} missing in target/fetch-fixtures/");
    if !require(sdist.is_file(), "lupa's source distribution (Lua 5.4's C sources)", &detail, FETCH_FIXTURES_HINT) {
        return;
    }
    let mirror = FileServer::start(&dir);
    let fetch = format!(
        "Fetch(name: \"lupa-sdist\", url: \"https://files.pythonhosted.org/packages/source/l/lupa/{SDIST}\", \
         hash: \"{SDIST_HASH}\")\n"
    );
    let lua = format!(
        "Library(name: \"lua\", inputs: [\"build.sh\"], deps: [\"lupa-sdist\"], \
         tools: [\"sh\", \"tar\", \"gzip\", \"mkdir\", \"cp\", \"cc\", \"as\", \"ld\"], builder: [\"sh\", \"build.sh\"], \
         env: {{\"CFLAGS\": \"{CFLAGS}\"}}, outputs: [\"bin/lua\", \"testes\"])\n"
    );
    let ws = TestWorkspace::new(BRR)
        .file("brr.ron", "Workspace(packages: [\"p/*\"])\n")
        .file("p/lupa/brr.ron", &fetch)
        .file("p/lua/brr.ron", &lua)
        .file("p/lua/build.sh", BUILD_SH);
    let result = ws.path().join("result");
    let mut cmd = ws.command();
    cmd.env("BRR_FETCH_MIRROR", mirror.url()).arg("build").arg("--out-link").arg(&result).arg("lua");
    brr_test_support::Run::from(cmd.output().unwrap()).success();
    assert_eq!(mirror.hits(SDIST), 1);
    let brr_lua = result.join("bin/lua");

    // The same sources built by Lua's own makefile, outside brr.
    let scratch = brr_test_support::temp_dir();
    let untar = Command::new("tar").arg("-xzf").arg(&sdist).arg("-C").arg(scratch.path()).arg(LUA_DIR).status();
    assert!(untar.unwrap().success(), "tar could not unpack {SDIST}");
    let src = scratch.path().join(LUA_DIR);
    let make = Command::new("make")
        .args(["-s", "CC=cc", &format!("CFLAGS={CFLAGS}"), "MYLIBS=-ldl", "lua"])
        .current_dir(&src)
        .output()
        .expect("make (build-essential) builds Lua with its own makefile");
    assert!(make.status.success(), "Lua's makefile failed:\n{}", String::from_utf8_lossy(&make.stderr));
    let make_lua = src.join("lua");

    // Lua's own tests: each passes with brr's interpreter, and prints what
    // the makefile's prints.
    let testes = result.join("testes");
    for name in TESTS {
        let (ok, brr_out) = lua_test(&brr_lua, &testes, name);
        assert!(ok, "testes/{name}.lua failed with brr's lua:\n{brr_out}");
        let (make_ok, make_out) = lua_test(&make_lua, &src.join("testes"), name);
        assert!(make_ok, "testes/{name}.lua failed with the makefile's lua:\n{make_out}");
        assert_eq!(brr_out, make_out, "testes/{name}.lua prints differently");
    }
    for name in RUN_ONLY {
        let (ok, out) = lua_test(&brr_lua, &testes, name);
        assert!(ok, "testes/{name}.lua failed with brr's lua:\n{out}");
    }
    let script = "local t = {} for i = 1, 10 do t[i] = (i * 7) % 11 end table.sort(t) \
                  print(_VERSION, table.concat(t, ','), string.format('%5.2f %x %q', math.pi, 255, 'a\\nb'), \
                  utf8.char(72, 228, 8364), 7 // 2, 2^10, string.pack('>i4', 258):byte(1, -1))";
    let run = |lua: &Path| {
        let out = Command::new(lua).args(["-e", script]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let printed = run(&brr_lua);
    assert!(printed.starts_with("Lua 5.4\t1,2,3,4,5,6,7,8,9,10\t"), "{printed}");
    assert_eq!(printed, run(&make_lua));
}
