//! The fields a template reads, as paths from the root of what it renders
//! (`customer.name`; `path.[].type` inside `{{#each path}}`), for `check`
//! to compare with the fields events have. Only what can be told without
//! rendering: paths inside a partial's own file, computed lookups and
//! helper-made contexts are left out rather than guessed.

use handlebars::template::{BlockParam, HelperTemplate, Parameter, Template, TemplateElement};

/// One field a template reads: its path from the root, and the line of the
/// top-level element it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldUse {
    /// Segments from the root; `[]` stands for any element of an array
    /// (or any value of an object iterated with `#each`).
    pub path: Vec<String>,
    /// As written in the template.
    pub written: String,
    pub line: Option<usize>,
}

impl FieldUse {
    /// The path as `check` shows it: `customer.name`, `path.[].type`.
    pub fn dotted(&self) -> String {
        self.path.join(".")
    }
}

/// Every field `template` reads; `is_helper` says which bare names are
/// helpers rather than fields.
pub fn fields(template: &Template, is_helper: &dyn Fn(&str) -> bool) -> Vec<FieldUse> {
    let mut walk = Walk { is_helper, found: Vec::new(), line: None };
    walk.template(template, &Scope::root(), true);
    walk.found
}

/// Where relative paths start: the context stack (innermost last) and the
/// block parameters in force.
#[derive(Clone)]
struct Scope {
    contexts: Vec<Vec<String>>,
    /// `as |item|` names and the path each stands for (`None`: a value the
    /// walk cannot follow, such as `@index`).
    params: Vec<(String, Option<Vec<String>>)>,
}

impl Scope {
    fn root() -> Scope {
        Scope { contexts: vec![Vec::new()], params: Vec::new() }
    }

    fn inside(&self, context: Vec<String>) -> Scope {
        let mut scope = self.clone();
        scope.contexts.push(context);
        scope
    }

    /// The path `raw` (as written) names, or `None` when it is not a field
    /// of the event (a data variable, a block parameter the walk cannot
    /// follow).
    fn resolve(&self, raw: &str) -> Option<Vec<String>> {
        let mut rest = raw.trim();
        let mut depth = self.contexts.len() - 1;
        let mut base: Vec<String>;
        if let Some(r) = rest.strip_prefix("@root") {
            base = Vec::new();
            rest = r.trim_start_matches(['.', '/']);
        } else if rest.starts_with('@') {
            return None;
        } else {
            while let Some(r) = rest.strip_prefix("../") {
                depth = depth.saturating_sub(1);
                rest = r;
            }
            rest = rest.trim_start_matches("./");
            if let Some(r) = rest.strip_prefix("this") {
                if r.is_empty() || r.starts_with(['.', '/']) {
                    rest = r.trim_start_matches(['.', '/']);
                }
            }
            base = self.contexts.get(depth).cloned().unwrap_or_default();
            let first = segments(rest).into_iter().next();
            if let Some((_, bound)) = first.and_then(|f| self.params.iter().rev().find(|(name, _)| *name == f)) {
                base = bound.clone()?;
                rest = rest.split_once(['.', '/']).map(|(_, r)| r).unwrap_or("");
            }
        }
        base.extend(segments(rest));
        Some(base)
    }
}

/// `a.b.[0].c` or `a/b/0` as segments, array indexes as `[]`.
fn segments(raw: &str) -> Vec<String> {
    raw.split(['.', '/'])
        .map(|s| s.trim_start_matches('[').trim_end_matches(']'))
        .filter(|s| !s.is_empty())
        .map(|s| if s.chars().all(|c| c.is_ascii_digit()) { "[]".to_owned() } else { s.to_owned() })
        .collect()
}

struct Walk<'a> {
    is_helper: &'a dyn Fn(&str) -> bool,
    found: Vec<FieldUse>,
    line: Option<usize>,
}

impl Walk<'_> {
    fn template(&mut self, template: &Template, scope: &Scope, top: bool) {
        for (i, element) in template.elements.iter().enumerate() {
            if top {
                self.line = template.mapping.get(i).map(|m| m.0);
            }
            self.element(element, scope);
        }
    }

    fn element(&mut self, element: &TemplateElement, scope: &Scope) {
        match element {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => self.expression(h, scope),
            TemplateElement::HelperBlock(h) => self.block(h, scope),
            TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                for p in d.params.iter().chain(d.hash.values()) {
                    self.parameter(p, scope);
                }
                if let Some(t) = &d.template {
                    self.template(t, scope, false);
                }
            }
            _ => {}
        }
    }

    fn expression(&mut self, h: &HelperTemplate, scope: &Scope) {
        match &h.name {
            // `{{name}}` alone is a field unless a helper has that name.
            Parameter::Name(name) if h.params.is_empty() && h.hash.is_empty() && !(self.is_helper)(name) => {
                self.path(name, scope)
            }
            Parameter::Path(p) => self.path(raw(p), scope),
            _ => {}
        }
        for p in h.params.iter().chain(h.hash.values()) {
            self.parameter(p, scope);
        }
    }

    fn block(&mut self, h: &HelperTemplate, scope: &Scope) {
        let name = match &h.name {
            Parameter::Name(n) => n.as_str(),
            Parameter::Path(p) => raw(p),
            _ => "",
        };
        for p in h.params.iter().chain(h.hash.values()) {
            self.parameter(p, scope);
        }
        let target = match h.params.first() {
            Some(Parameter::Path(p)) => scope.resolve(raw(p)),
            Some(Parameter::Name(n)) => scope.resolve(n),
            _ => None,
        };
        let inner = match (name, target) {
            ("each", Some(mut target)) => {
                target.push("[]".into());
                let mut inner = scope.inside(target.clone());
                match &h.block_param {
                    Some(BlockParam::Single(p)) => inner.params.push((param_name(p), Some(target))),
                    Some(BlockParam::Pair((item, index))) => {
                        inner.params.push((param_name(item), Some(target)));
                        inner.params.push((param_name(index), None));
                    }
                    _ => {}
                }
                inner
            }
            ("with", Some(target)) => scope.inside(target),
            ("if" | "unless", _) => scope.clone(),
            // Another helper's block: its context is its own business.
            (_, _) if h.block_param.is_some() || !matches!(name, "each" | "with") => scope.clone(),
            _ => return,
        };
        if let Some(t) = &h.template {
            self.template(t, &inner, false);
        }
        if let Some(t) = &h.inverse {
            self.template(t, scope, false);
        }
    }

    fn parameter(&mut self, p: &Parameter, scope: &Scope) {
        match p {
            Parameter::Path(path) => self.path(raw(path), scope),
            Parameter::Subexpression(s) => self.element(&s.element, scope),
            _ => {}
        }
    }

    fn path(&mut self, raw: &str, scope: &Scope) {
        if let Some(path) = scope.resolve(raw) {
            if !path.is_empty() {
                self.found.push(FieldUse { path, written: raw.to_owned(), line: self.line });
            }
        }
    }
}

/// A path as written (`customer.name`, `../x`, `@index`).
fn raw(path: &handlebars::Path) -> &str {
    match path {
        handlebars::Path::Relative((_, raw)) => raw,
        // `@index`, `@key`, ...: data of the block, not of the event.
        handlebars::Path::Local((_, _, raw)) => raw,
    }
}

fn param_name(p: &Parameter) -> String {
    match p {
        Parameter::Name(n) => n.clone(),
        Parameter::Path(p) => raw(p).to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(source: &str) -> Vec<String> {
        let t = Template::compile(source).unwrap();
        fields(&t, &|n| n == "money").into_iter().map(|f| f.dotted()).collect()
    }

    #[test]
    fn paths_are_read_from_the_root_through_blocks() {
        assert_eq!(read("{{customer.nmae}} {{outcome}}"), ["customer.nmae", "outcome"]);
        assert_eq!(read("{{#each path}}{{type}} {{../outcome}}{{/each}}"), ["path", "path.[].type", "outcome"]);
        assert_eq!(read("{{#with customer}}{{name}}{{/with}}"), ["customer", "customer.name"]);
        assert_eq!(
            read("{{#if customer}}{{customer.email}}{{else}}{{flowId}}{{/if}}"),
            ["customer", "customer.email", "flowId"]
        );
        assert_eq!(
            read("{{money subscription.plan.amount}} {{path.0.type}}"),
            ["subscription.plan.amount", "path.[].type"]
        );
        assert_eq!(read("{{#each path as |step i|}}{{step.type}}{{i}}{{@index}}{{/each}}"), ["path", "path.[].type"]);
        assert_eq!(read("{{@root.outcome}} {{this.appId}}"), ["outcome", "appId"]);
    }

    #[test]
    fn each_use_has_its_line() {
        let t = Template::compile("a\n{{b}}\n{{#if c}}\n{{d}}\n{{/if}}").unwrap();
        let lines: Vec<_> = fields(&t, &|_| false).into_iter().map(|f| (f.dotted(), f.line)).collect();
        assert_eq!(lines, [("b".into(), Some(2)), ("c".into(), Some(3)), ("d".into(), Some(3))]);
    }
}
