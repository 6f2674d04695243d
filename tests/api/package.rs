//! The Debian package, as a server's administrator gets it: built with
//! `cargo deb` from the binary these tests were built with, installed with
//! dpkg into a clean Debian root (debootstrap's minbase), where its user
//! exists, its config and templates are conffiles, and `raaft-relay check`
//! passes as that user; its systemd unit passes `systemd-analyze verify`.

use crate::helpers::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A clean Debian root, made once (debootstrap's minbase, kept as a
/// tarball in the user's cache, so that a fresh clone does not download
/// it again) and unpacked into `into`.
fn clean_root(into: &Path) {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| repo_path("target"));
    let tarball = cache.join("raaft-relay-tests/bookworm-minbase.tar");
    if !tarball.exists() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        succeeded(
            Command::new("debootstrap")
                .args(["--variant=minbase", "bookworm"])
                .arg(&root)
                .arg("http://deb.debian.org/debian")
                .output()
                .expect("debootstrap (Debian: apt-get install debootstrap)"),
            "debootstrap",
        );
        std::fs::create_dir_all(tarball.parent().unwrap()).unwrap();
        let partial = tarball.with_extension("partial");
        succeeded(Command::new("tar").arg("-cf").arg(&partial).arg("-C").arg(&root).arg(".").output().unwrap(), "tar");
        std::fs::rename(partial, &tarball).unwrap();
    }
    std::fs::create_dir_all(into).unwrap();
    succeeded(Command::new("tar").arg("-xf").arg(&tarball).arg("-C").arg(into).output().unwrap(), "untar");
}

fn in_root(root: &Path, args: &[&str]) -> Output {
    Command::new("chroot")
        .arg(root)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap()
}

/// The package, built from the binary of this build.
fn build_package(out: &Path) -> PathBuf {
    let profile = if cfg!(debug_assertions) { "dev" } else { "release" };
    succeeded(
        Command::new("cargo")
            .args(["deb", "--no-build", "--fast", "--profile", profile, "--output"])
            .arg(out)
            .current_dir(repo_path(""))
            .output()
            .expect("cargo-deb (cargo install cargo-deb)"),
        "cargo deb",
    );
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .unwrap()
}

#[test]
#[cfg_attr(not(package_tests), ignore = "install cargo-deb, and Debian's debootstrap and systemd, to run it")]
fn the_package_installs_into_a_clean_root_and_checks_as_its_user() {
    let dir = tempfile::tempdir().unwrap();
    let deb = build_package(&dir.path().join("out"));
    let contents = succeeded(Command::new("dpkg-deb").arg("--contents").arg(&deb).output().unwrap(), "dpkg-deb");
    for path in [
        "./usr/bin/raaft-relay",
        "./etc/raaft-relay/relay.toml",
        "./etc/raaft-relay/templates/slack/canceled.json.hbs",
        "./etc/raaft-relay/templates/partials/monthly_value.hbs",
        "./usr/lib/systemd/system/raaft-relay.service",
        "./usr/share/doc/raaft-relay/deployment.md",
    ] {
        assert!(contents.contains(path), "{path} is not in the package:\n{contents}");
    }
    let conffiles =
        succeeded(Command::new("dpkg-deb").arg("--info").arg(&deb).arg("conffiles").output().unwrap(), "conffiles");
    assert!(conffiles.lines().any(|l| l == "/etc/raaft-relay/relay.toml"), "{conffiles}");
    assert!(conffiles.lines().any(|l| l == "/etc/raaft-relay/templates/slack/canceled.json.hbs"), "{conffiles}");

    let root = dir.path().join("root");
    clean_root(&root);
    std::fs::copy(&deb, root.join("tmp/raaft-relay.deb")).unwrap();
    succeeded(in_root(&root, &["dpkg", "-i", "/tmp/raaft-relay.deb"]), "dpkg -i");
    let user = succeeded(in_root(&root, &["getent", "passwd", "raaft-relay"]), "the user");
    assert!(user.contains("/usr/sbin/nologin"), "{user}");
    let mode = succeeded(in_root(&root, &["stat", "-c", "%a %U:%G", "/etc/raaft-relay/relay.toml"]), "stat");
    assert_eq!(mode.trim(), "640 root:raaft-relay");

    // The administrator sets the token, and checks as the service would run.
    let check = in_root(
        &root,
        &[
            "runuser",
            "-u",
            "raaft-relay",
            "--",
            "env",
            "RAAFT_TOKEN=a-token-long-enough-to-pass",
            "raaft-relay",
            "check",
        ],
    );
    let printed = succeeded(check, "check as raaft-relay");
    assert!(printed.contains("/etc/raaft-relay/relay.toml: ok"), "{printed}");
    assert!(printed.lines().any(|l| l == "store: sqlite:///var/lib/raaft-relay/relay.db"), "{printed}");
}

#[test]
#[cfg_attr(not(package_tests), ignore = "install cargo-deb, and Debian's debootstrap and systemd, to run it")]
fn the_unit_passes_systemd_analyze_verify_and_is_hardened() {
    let unit = std::fs::read_to_string(repo_path("packaging/raaft-relay.service")).unwrap();
    for setting in [
        "StateDirectory=raaft-relay",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "UMask=0077",
        "EnvironmentFile=-/etc/raaft-relay/env",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "After=network-online.target postgresql.service",
    ] {
        assert!(unit.contains(setting), "the unit lacks {setting:?}");
    }
    // Verified in a root that has what it names (its binary, kill, the
    // system's targets), as systemd would load it there.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    succeeded(
        Command::new("cp")
            .arg("-a")
            .arg("/usr/lib/systemd/system")
            .arg(root.join("usr/lib/systemd/"))
            .output()
            .unwrap(),
        "cp",
    );
    std::fs::copy("/usr/bin/kill", root.join("usr/bin/kill")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_raaft-relay"), root.join("usr/bin/raaft-relay")).unwrap();
    let path = root.join("etc/systemd/system/raaft-relay.service");
    std::fs::write(&path, &unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--root"])
        .arg(root)
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian: apt-get install systemd)");
    let printed = said(&out);
    assert!(out.status.success() && !printed.contains("raaft-relay.service:"), "{printed}");
}
