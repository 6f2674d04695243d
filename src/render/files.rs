//! The template files a configuration is compiled from: the files under
//! `templates_dir`, with edits not written yet laid over them. The
//! console's save compiles and checks the whole configuration as it would
//! be with the new file before anything touches the disk.

use crate::problems::Problem;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `templates_dir` and the edits laid over it, by path under it.
#[derive(Debug, Clone, Default)]
pub struct TemplateFiles {
    dir: PathBuf,
    edits: BTreeMap<String, String>,
}

/// A partial: its name (the file's stem), its text and its file.
pub(super) struct PartialSource {
    pub name: String,
    pub source: String,
    pub file: PathBuf,
}

impl TemplateFiles {
    /// The files of `dir` as they are.
    pub fn new(dir: impl Into<PathBuf>) -> TemplateFiles {
        TemplateFiles { dir: dir.into(), edits: BTreeMap::new() }
    }

    /// These files with `rel` (a path under the folder) holding `source`.
    pub fn with_edit(mut self, rel: &str, source: &str) -> TemplateFiles {
        self.edits.insert(rel.to_owned(), source.to_owned());
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file `rel` stands for.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Whether `rel` exists (edited, or on disk).
    pub fn exists(&self, rel: &str) -> bool {
        self.edits.contains_key(rel) || self.dir.join(rel).is_file()
    }

    /// The text of `rel`.
    pub fn read(&self, rel: &str) -> std::io::Result<String> {
        match self.edits.get(rel) {
            Some(source) => Ok(source.clone()),
            None => std::fs::read_to_string(self.dir.join(rel)),
        }
    }

    /// Every `*.hbs` under `partials/`, named by its stem.
    pub(super) fn partials(&self) -> Result<Vec<PartialSource>, Problem> {
        let mut found: BTreeMap<String, PartialSource> = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("partials")) {
            for entry in entries.flatten() {
                let file = entry.path();
                let Some(name) = file.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".hbs")) else {
                    continue;
                };
                let rel = format!("partials/{name}.hbs");
                if self.edits.contains_key(&rel) {
                    continue;
                }
                let source = std::fs::read_to_string(&file)
                    .map_err(|e| Problem::new(&file, format!("cannot read partial: {e}")))?;
                found.insert(name.to_owned(), PartialSource { name: name.to_owned(), source, file });
            }
        }
        for (rel, source) in &self.edits {
            let Some(name) = rel.strip_prefix("partials/").and_then(|n| n.strip_suffix(".hbs")) else { continue };
            if name.contains('/') {
                continue;
            }
            let file = self.dir.join(rel);
            found.insert(name.to_owned(), PartialSource { name: name.to_owned(), source: source.clone(), file });
        }
        Ok(found.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_lie_over_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("partials")).unwrap();
        std::fs::write(dir.path().join("main.hbs"), "on disk").unwrap();
        std::fs::write(dir.path().join("partials/a.hbs"), "a on disk").unwrap();
        std::fs::write(dir.path().join("partials/b.hbs"), "b on disk").unwrap();
        let files = TemplateFiles::new(dir.path())
            .with_edit("main.hbs", "edited")
            .with_edit("partials/b.hbs", "b edited")
            .with_edit("partials/c.hbs", "c new");
        assert_eq!(files.read("main.hbs").unwrap(), "edited");
        assert!(files.exists("partials/c.hbs") && !files.exists("other.hbs"));
        let partials: Vec<(String, String)> =
            files.partials().unwrap().into_iter().map(|p| (p.name, p.source)).collect();
        assert_eq!(
            partials,
            [("a", "a on disk"), ("b", "b edited"), ("c", "c new")].map(|(n, s)| (n.to_owned(), s.to_owned()))
        );
        assert_eq!(std::fs::read_to_string(dir.path().join("main.hbs")).unwrap(), "on disk", "nothing written");
    }
}
