//! The released binary (packaging/build-portable.sh) runs on glibc 2.28 and
//! newer: no symbol versioned above GLIBC_2.28 and no packed relocations,
//! which older loaders refuse (`GLIBC_ABI_DT_RELR`). CI builds it and names
//! it in RAAFT_RELAY_PORTABLE_BINARY.

use std::process::Command;

/// The `GLIBC_x.y` versions the dynamic symbols of `binary` need.
fn glibc_versions(dynamic_symbols: &str) -> Vec<(u32, u32)> {
    let mut versions: Vec<(u32, u32)> = dynamic_symbols
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.');
            Some((parts.next()?.parse().ok()?, parts.next().unwrap_or("0").parse().ok()?))
        })
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

#[test]
fn symbol_versions_are_read_from_objdump() {
    let sample = "0000 DF *UND* 0000 (GLIBC_2.2.5) memcpy\n0000 DF *UND* 0000 (GLIBC_2.34) __libc_start_main\n\
                  0000 DF *UND* 0000 GLIBC_2.28 fcntl64\n0000 w D *UND* 0000 Base __gmon_start__\n";
    assert_eq!(glibc_versions(sample), vec![(2, 2), (2, 28), (2, 34)]);
}

#[test]
#[cfg_attr(
    not(portable_binary),
    ignore = "build it with packaging/build-portable.sh and set RAAFT_RELAY_PORTABLE_BINARY"
)]
fn the_released_binary_runs_on_glibc_2_28() {
    let binary = std::env::var("RAAFT_RELAY_PORTABLE_BINARY").expect("RAAFT_RELAY_PORTABLE_BINARY names the binary");
    let out = Command::new("objdump").args(["-T", &binary]).output().expect("objdump (Debian: binutils)");
    assert!(out.status.success());
    let symbols = String::from_utf8_lossy(&out.stdout);
    let newest = glibc_versions(&symbols).into_iter().max().expect("versioned glibc symbols");
    assert!(
        newest <= (2, 28),
        "needs GLIBC_{}.{}:\n{}",
        newest.0,
        newest.1,
        symbols
            .lines()
            .filter(|l| l.contains(&format!("GLIBC_{}.{}", newest.0, newest.1)))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let versions = Command::new("objdump").args(["-p", &binary]).output().unwrap();
    let needs = String::from_utf8_lossy(&versions.stdout);
    assert!(!needs.contains("GLIBC_ABI_DT_RELR"), "packed relocations need glibc 2.36:\n{needs}");
    // And it runs here.
    let version = Command::new(&binary).arg("--version").output().unwrap();
    assert!(version.status.success() && String::from_utf8_lossy(&version.stdout).starts_with("raaft-relay "));
}
