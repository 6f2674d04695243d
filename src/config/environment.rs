//! Where `${VAR}` takes its value: the env file (`--env-file`, in the
//! format of systemd's `EnvironmentFile=`: `KEY=VALUE` lines, `#`
//! comments, quoted values), read afresh at every load so that a reload
//! sees what it holds now, then the process environment. The file wins: a
//! service started with `EnvironmentFile=` has the file's values of its
//! start in its environment too, and a reload must see the new ones.

use crate::problems::Problem;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static ENV_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Reads `path` at every load from now on (`--env-file`); the first call
/// of the process decides.
pub fn use_env_file(path: PathBuf) {
    let _ = ENV_FILE.set(path);
}

/// The env file every load reads, if one was given.
pub fn env_file() -> Option<&'static Path> {
    ENV_FILE.get().map(PathBuf::as_path)
}

/// The values `${VAR}` reads, as of now.
#[derive(Debug, Default)]
pub struct Environment {
    file: BTreeMap<String, String>,
}

impl Environment {
    /// The env file's variables (when one was given) over the process's.
    pub fn current() -> Result<Environment, Problem> {
        match env_file() {
            Some(path) => Ok(Environment { file: read_env_file(path)? }),
            None => Ok(Environment::default()),
        }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.file.get(name).cloned().or_else(|| std::env::var(name).ok())
    }
}

/// The variables of the env file at `path`.
pub fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>, Problem> {
    let lines = dotenvy::from_path_iter(path)
        .map_err(|e| Problem::new(path, format!("cannot read env file: {}", describe(&e))))?;
    lines
        .map(|item| {
            item.map_err(|e| match e {
                dotenvy::Error::LineParse(line, at) => Problem::new(
                    path,
                    format!("cannot read env file: not KEY=VALUE at character {at} of \"{}\"", line.trim_end()),
                ),
                other => Problem::new(path, format!("cannot read env file: {}", describe(&other))),
            })
        })
        .collect()
}

fn describe(e: &dotenvy::Error) -> String {
    match e {
        dotenvy::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_systemd_format_is_read_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        std::fs::write(
            &path,
            "# secrets\nRAAFT_TOKEN=abc\nSLACK_URL=\"https://hooks.slack.com/services/x\"\n\nQUOTED='a b'\n",
        )
        .unwrap();
        let vars = read_env_file(&path).unwrap();
        assert_eq!(vars["RAAFT_TOKEN"], "abc");
        assert_eq!(vars["SLACK_URL"], "https://hooks.slack.com/services/x");
        assert_eq!(vars["QUOTED"], "a b");
        std::fs::write(&path, "GOOD=1\nnot a line\n").unwrap();
        let err = read_env_file(&path).unwrap_err().to_string();
        assert!(err.contains("not KEY=VALUE") && err.contains("not a line"), "{err}");
        let missing = read_env_file(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(missing.contains("cannot read env file: No such file"), "{missing}");
    }
}
