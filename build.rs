//! Links the relay with packed relative relocations (DT_RELR) where the C
//! library understands them (glibc 2.36 and later, building for the machine
//! at hand). A position-independent Rust binary carries over a megabyte of
//! relocation entries that the loader reads at every start, and they stay
//! resident; packed, they take about 20 kilobytes. Elsewhere nothing changes,
//! and the portable build (`RAAFT_RELAY_PORTABLE`, for glibc 2.28) goes
//! without them.
//!
//! It also tells the tests whether a PostgreSQL server was given
//! (`RAAFT_RELAY_TEST_POSTGRES`): without one, the PostgreSQL tests are
//! reported as ignored, with the reason, instead of passing unrun. The
//! same goes for the console's browser tests without ChromeDriver, and the
//! reverse-proxy tests without nginx and Caddy, the container test
//! without podman, and the package test without cargo-deb, debootstrap and
//! systemd-analyze. It watches those programs' files only (or, for one
//! that is missing, the folders it would be installed in), so installing
//! an unrelated package builds nothing again.
//!
//! And it records the commit the binary is built from, for `--version`
//! (`RAAFT_RELAY_COMMIT` when set, as a build without the repository
//! gives it; else `git rev-parse`).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-env=RAAFT_RELAY_COMMIT={}", commit());
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    println!("cargo:rerun-if-env-changed=RAAFT_RELAY_TEST_POSTGRES");
    if std::env::var("RAAFT_RELAY_TEST_POSTGRES").is_ok_and(|url| !url.trim().is_empty()) {
        println!("cargo:rustc-cfg=postgres_tests");
    }
    // The console's browser tests need ChromeDriver (Debian's
    // chromium-driver, or CHROMEDRIVER).
    println!("cargo::rustc-check-cfg=cfg(browser_tests)");
    println!("cargo:rerun-if-env-changed=CHROMEDRIVER");
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    if tool(&driver, "--version") {
        println!("cargo:rustc-cfg=browser_tests");
    }
    // The reverse-proxy tests run Debian's nginx and Caddy.
    println!("cargo::rustc-check-cfg=cfg(proxy_tests)");
    if tool("nginx", "-v") && tool("caddy", "version") {
        println!("cargo:rustc-cfg=proxy_tests");
    }
    // The container test builds and runs the image with Debian's podman.
    println!("cargo::rustc-check-cfg=cfg(container_tests)");
    if tool("podman", "--version") && tool("runc", "--version") {
        println!("cargo:rustc-cfg=container_tests");
    }
    // The package test builds the .deb with cargo-deb (installed by cargo
    // into its bin folder), installs it into a debootstrap root and verifies
    // the unit with systemd-analyze.
    println!("cargo::rustc-check-cfg=cfg(package_tests)");
    let cargo_deb = tool("cargo-deb", "--version");
    if cargo_deb && tool("debootstrap", "--version") && tool("systemd-analyze", "--version") {
        println!("cargo:rustc-cfg=package_tests");
    }
    // The portable binary's test checks the file that build made, when CI
    // names it.
    println!("cargo::rustc-check-cfg=cfg(portable_binary)");
    println!("cargo:rerun-if-env-changed=RAAFT_RELAY_PORTABLE_BINARY");
    if std::env::var_os("RAAFT_RELAY_PORTABLE_BINARY").is_some_and(|p| std::path::Path::new(&p).is_file()) {
        println!("cargo:rustc-cfg=portable_binary");
    }
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    if target != host || !target.ends_with("-linux-gnu") {
        return;
    }
    // The portable build (packaging/build-portable.sh) runs on older C
    // libraries, which do not understand packed relocations.
    println!("cargo:rerun-if-env-changed=RAAFT_RELAY_PORTABLE");
    if std::env::var_os("RAAFT_RELAY_PORTABLE").is_none() && glibc_version().is_some_and(|v| v >= (2, 36)) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether `program` runs (`arg` is how it says its version), watching
/// only what that depends on: the program's file where it is found, or,
/// while it is missing, the folders it is looked for in (`PATH` and
/// cargo's bin folder), so installing it builds again.
fn tool(program: &str, arg: &str) -> bool {
    let path = std::path::Path::new(program);
    let mut dirs: Vec<std::path::PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")));
    dirs.extend(cargo_home.map(|h| h.join("bin")));
    let found = if path.components().count() > 1 {
        Some(path.to_path_buf()).filter(|p| p.is_file())
    } else {
        dirs.iter().map(|d| d.join(program)).find(|p| p.is_file())
    };
    match found {
        Some(file) => {
            println!("cargo:rerun-if-changed={}", file.display());
            Command::new(&file).arg(arg).output().is_ok_and(|o| o.status.success())
        }
        None => {
            for dir in dirs.iter().filter(|d| d.is_dir()) {
                println!("cargo:rerun-if-changed={}", dir.display());
            }
            false
        }
    }
}

/// The commit being built, or "unknown" outside a repository.
fn commit() -> String {
    println!("cargo:rerun-if-env-changed=RAAFT_RELAY_COMMIT");
    if let Ok(commit) = std::env::var("RAAFT_RELAY_COMMIT") {
        return commit;
    }
    for watched in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if std::path::Path::new(watched).exists() {
            println!("cargo:rerun-if-changed={watched}");
        }
    }
    Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The running glibc's version, from `getconf GNU_LIBC_VERSION`
/// ("glibc 2.36").
fn glibc_version() -> Option<(u32, u32)> {
    let out = Command::new("getconf").arg("GNU_LIBC_VERSION").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let (major, minor) = text.trim().strip_prefix("glibc ")?.split_once('.')?;
    Some((major.parse().ok()?, minor.split('.').next()?.parse().ok()?))
}
