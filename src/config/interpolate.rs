//! `${VAR}`, `${VAR:-default}` and `${file:PATH}` substitution in config
//! string values, so secrets come from the environment or from Docker and
//! Kubernetes secret files instead of the config file itself.

use std::path::Path;

/// Why a string could not be interpolated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InterpolateError {
    #[error("environment variable `{0}` is not set (write ${{{0}:-default}} to give a default)")]
    MissingVar(String),
    #[error("cannot read secret file \"{path}\": {reason}")]
    File { path: String, reason: String },
    #[error("unterminated \"${{\" in \"{0}\"")]
    Unterminated(String),
    #[error("empty variable name in \"{0}\"")]
    EmptyName(String),
}

/// Replaces every `${...}` in `input`. `$${` stands for a literal `${`.
/// Relative secret-file paths resolve against `base_dir` (the config file's
/// directory). `lookup` reads the environment; tests pass their own.
pub fn interpolate(
    input: &str,
    base_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolateError> {
    if !input.contains('$') {
        return Ok(input.to_owned());
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
            continue;
        }
        let Some(body_start) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = body_start.find('}') else {
            return Err(InterpolateError::Unterminated(input.to_owned()));
        };
        let body = &body_start[..end];
        out.push_str(&resolve(body, input, base_dir, lookup)?);
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(
    body: &str,
    whole: &str,
    base_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolateError> {
    if let Some(path) = body.strip_prefix("file:") {
        let full = base_dir.join(path.trim());
        return std::fs::read_to_string(&full)
            .map(|s| s.trim().to_owned())
            .map_err(|e| InterpolateError::File { path: full.display().to_string(), reason: e.to_string() });
    }
    let (name, default) = match body.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (body, None),
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(InterpolateError::EmptyName(whole.to_owned()));
    }
    match (lookup(name), default) {
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(InterpolateError::MissingVar(name.to_owned())),
    }
}

/// The files `${file:PATH}` references in `input` would read, resolved
/// against `base_dir` (the config's folder): a reload watches them.
pub fn file_references(input: &str, base_dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut rest = input;
    while let Some(start) = rest.find("${file:") {
        let after = &rest[start + "${file:".len()..];
        let Some(end) = after.find('}') else { break };
        files.push(base_dir.join(after[..end].trim()));
        rest = &after[end + 1..];
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn run(input: &str) -> Result<String, InterpolateError> {
        interpolate(input, Path::new("/nonexistent"), &env)
    }

    #[test]
    fn replaces_variables_anywhere_in_a_string() {
        assert_eq!(run("${TOKEN}").unwrap(), "s3cret");
        assert_eq!(run("smtp://u:${TOKEN}@h:587?tls=required").unwrap(), "smtp://u:s3cret@h:587?tls=required");
        assert_eq!(run("${TOKEN}-${TOKEN}").unwrap(), "s3cret-s3cret");
        assert_eq!(run("no variables").unwrap(), "no variables");
        assert_eq!(run("costs $5").unwrap(), "costs $5");
    }

    #[test]
    fn defaults_apply_only_when_unset() {
        assert_eq!(run("${MISSING:-fallback}").unwrap(), "fallback");
        assert_eq!(run("${MISSING:-}").unwrap(), "");
        assert_eq!(run("${TOKEN:-fallback}").unwrap(), "s3cret");
        assert_eq!(run("${EMPTY:-fallback}").unwrap(), "");
    }

    #[test]
    fn missing_variable_names_it() {
        let err = run("x ${SLACK_URL} y").unwrap_err();
        assert_eq!(err, InterpolateError::MissingVar("SLACK_URL".into()));
        assert!(err.to_string().contains("`SLACK_URL`"));
    }

    #[test]
    fn escaped_and_malformed_references() {
        assert_eq!(run("$${TOKEN}").unwrap(), "${TOKEN}");
        assert!(matches!(run("${TOKEN"), Err(InterpolateError::Unterminated(_))));
        assert!(matches!(run("${}"), Err(InterpolateError::EmptyName(_))));
    }

    #[test]
    fn file_secrets_are_trimmed_and_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "hunter2\n").unwrap();
        let got = interpolate("p=${file:pw}", dir.path(), &env).unwrap();
        assert_eq!(got, "p=hunter2");
        let err = interpolate("${file:nope}", dir.path(), &env).unwrap_err();
        assert!(matches!(err, InterpolateError::File { .. }), "{err}");
    }

    #[test]
    fn file_references_are_listed_for_the_watcher() {
        let base = Path::new("/etc/raaft");
        assert_eq!(
            file_references("smtp://u:${file:secrets/pw}@h ${TOKEN} $${file:x} ${file: key }", base),
            [base.join("secrets/pw"), base.join("x"), base.join("key")]
        );
        assert!(file_references("${file:unterminated", base).is_empty());
    }
}
