//! Running the real `skewer` binary from the repository root and capturing what it prints.

use std::path::Path;
use std::process::{Command, Output};

/// The output of the real `skewer` binary, run from the repository root.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn skewer<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out: Output = Command::new(env!("CARGO_BIN_EXE_skewer"))
        .args(args)
        .current_dir(repo())
        .env_remove("RUST_LOG")
        .output()
        .expect("the skewer binary runs");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `skewer gen --objects N --properties P … --out DIR`, which must succeed; `extra` adds
/// options (`--format parquet`, `--seed 9`).
pub fn gen_dump(out: &Path, objects: u32, properties: u32, extra: &[&str]) {
    let (objects, properties) = (objects.to_string(), properties.to_string());
    let mut args = vec!["gen", "--objects", &objects, "--properties", &properties];
    args.extend_from_slice(extra);
    args.extend(["--out", out.to_str().expect("a UTF-8 path")]);
    let run = skewer(args);
    assert_eq!(run.code, 0, "{}", run.stderr);
}
