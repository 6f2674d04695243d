//! What a template may be, checked when it is compiled: no partial that
//! includes itself through others (inline partials and the template itself
//! included), no partial whose name is computed while rendering, no block
//! partial whose content writes anything, and no deeper nesting than
//! [`MAX_NESTING`] (blocks, `else` links, sub-expressions and partials,
//! counted along every chain of partials). Handlebars renders by
//! recursion: a loop of partials would overflow the stack and abort the
//! process, and so would a template nested thousands deep, before a render
//! budget could stop it. And it renders a block partial's content into
//! memory of its own before the partial, where the budget's writer cannot
//! see it.

use handlebars::template::{DecoratorTemplate, Parameter, Template, TemplateElement};
use std::collections::{BTreeMap, HashMap};

/// How deep blocks, sub-expressions and partials may nest, in all.
pub const MAX_NESTING: usize = 48;

/// Why a template's structure is refused, with the line it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: String,
    /// The file the line is in: `None` for the template itself, or a
    /// partial file's name.
    pub partial: Option<String>,
    pub line: Option<usize>,
}

fn too_deep() -> String {
    format!("template nested deeper than {MAX_NESTING} blocks, sub-expressions and partials")
}

/// Refuses `source` nested deeper than [`MAX_NESTING`], before Handlebars
/// parses it (its parser recurses, and the tree it builds is walked by
/// recursion). The count errs on the high side rather than follow the
/// grammar's every turn: every tag opening with `#` opens a level until its
/// `/`, every `else` or `^` adds one (an `else if` chain nests one level a
/// link), and brackets count inside a tag, quotes, escapes and comments
/// notwithstanding.
pub fn check_source_nesting(source: &str) -> Result<(), (String, usize)> {
    // Bytes throughout: every marker is ASCII, and a byte offset inside a
    // multi-byte character must never be sliced at.
    let bytes = source.as_bytes();
    let line_at = |at: usize| bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    // The depth before each block still open, innermost last.
    let mut open: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i + 1 < bytes.len() {
        if !(bytes[i] == b'{' && bytes[i + 1] == b'{') {
            i += 1;
            continue;
        }
        let tag = i;
        i += 2;
        let first = bytes[i..].iter().position(|b| !matches!(b, b'~' | b'{' | b' ' | b'\t' | b'\r' | b'\n'));
        let word = first.map(|at| &bytes[i + at..]).unwrap_or_default();
        if word.starts_with(b"#") {
            open.push(depth);
            depth += 1;
        } else if word.starts_with(b"^") || word.starts_with(b"else") {
            depth += 1;
        } else if word.starts_with(b"/") {
            depth = open.pop().unwrap_or(0);
        }
        let mut brackets = 0usize;
        let mut deepest = 0usize;
        while i < bytes.len() && !(bytes[i] == b'}' && bytes.get(i + 1) == Some(&b'}')) {
            match bytes[i] {
                b'(' | b'[' | b'{' => {
                    brackets += 1;
                    deepest = deepest.max(brackets);
                }
                b')' | b']' | b'}' => brackets = brackets.saturating_sub(1),
                _ => {}
            }
            i += 1;
        }
        if depth + deepest > MAX_NESTING {
            return Err((too_deep(), line_at(tag)));
        }
    }
    Ok(())
}

/// A file of templates: the template being compiled (`None`), or a partial
/// file by name.
type Name = Option<String>;

/// Checks the compiled `root` (registered as `root_name`, so a partial
/// tag may name it too) with the partials it can reach (`partials`, by
/// name: the files under `partials/`): no loop, no computed name, no block
/// partial content that writes, no chain nested deeper than
/// [`MAX_NESTING`]. `shown` is how messages name the root.
pub fn check_partials(
    root: &Template,
    root_name: &str,
    shown: &str,
    partials: &HashMap<String, &Template>,
) -> Result<(), Refused> {
    let mut graph =
        Graph { partials, inline: BTreeMap::new(), depth: HashMap::new(), path: Vec::new(), root_name, shown };
    graph.collect_inline(&None, root, 0)?;
    for (name, partial) in partials {
        graph.collect_inline(&Some(name.clone()), partial, 0)?;
    }
    // The template itself is being rendered: a partial that names it
    // closes a loop.
    graph.path.push(root_name.to_owned());
    graph.depth_of(&None, root, 0).map(|_| ())
}

struct Graph<'a> {
    partials: &'a HashMap<String, &'a Template>,
    /// Inline partials (`{{#*inline "name"}}`), wherever defined, each with
    /// the file it is defined in: one name may be defined in several
    /// places, and any of them may be the one a tag reaches.
    inline: BTreeMap<String, Vec<(Name, &'a Template)>>,
    /// Finished partials' depths.
    depth: HashMap<String, usize>,
    /// The partials being walked, in order: a name met again is a loop.
    path: Vec<String>,
    root_name: &'a str,
    shown: &'a str,
}

/// A partial tag's name, when written out (`{{> name}}`, `{{> "name"}}`).
fn literal_name(name: &Parameter) -> Option<String> {
    match name {
        Parameter::Literal(serde_json::Value::String(s)) => Some(s.clone()),
        Parameter::Literal(other) => Some(other.to_string()),
        Parameter::Subexpression(_) => None,
        written => written.as_name().map(str::to_owned),
    }
}

/// How deep a parameter's sub-expressions nest.
fn parameter_depth(p: &Parameter) -> usize {
    match p {
        Parameter::Subexpression(s) => 1 + element_params_depth(&s.element),
        _ => 0,
    }
}

fn element_params_depth(e: &TemplateElement) -> usize {
    let params = |name: &Parameter, params: &[Parameter], hash: &HashMap<String, Parameter>| {
        std::iter::once(name).chain(params).chain(hash.values()).map(parameter_depth).max().unwrap_or(0)
    };
    match e {
        TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) | TemplateElement::HelperBlock(h) => {
            params(&h.name, &h.params, &h.hash)
        }
        TemplateElement::DecoratorExpression(d)
        | TemplateElement::DecoratorBlock(d)
        | TemplateElement::PartialExpression(d)
        | TemplateElement::PartialBlock(d) => params(&d.name, &d.params, &d.hash),
        _ => 0,
    }
}

fn is_inline(d: &DecoratorTemplate) -> bool {
    literal_name(&d.name).as_deref() == Some("inline")
}

/// Whether a block partial's content only defines inline partials (or is
/// blank): content that writes is rendered into memory before the partial.
fn writes_nothing(content: &Template) -> bool {
    content.elements.iter().all(|e| match e {
        TemplateElement::RawString(s) => s.trim().is_empty(),
        TemplateElement::Comment(_) => true,
        TemplateElement::DecoratorBlock(d) | TemplateElement::DecoratorExpression(d) => is_inline(d),
        _ => false,
    })
}

impl<'a> Graph<'a> {
    fn shown(&self, name: &str) -> String {
        if name == self.root_name {
            self.shown.to_owned()
        } else {
            name.to_owned()
        }
    }

    /// Every inline partial defined in `t`, at any depth.
    fn collect_inline(&mut self, file: &Name, t: &'a Template, level: usize) -> Result<(), Refused> {
        let refused =
            |i: usize, reason: String| Refused { reason, partial: file.clone(), line: t.mapping.get(i).map(|m| m.0) };
        if level > MAX_NESTING {
            return Err(refused(0, too_deep()));
        }
        for (i, e) in t.elements.iter().enumerate() {
            match e {
                TemplateElement::DecoratorBlock(d) if is_inline(d) => {
                    // Only a quoted name: any other is looked up in the
                    // event, which would let an event name a partial.
                    let Some(Parameter::Literal(serde_json::Value::String(name))) = d.params.first() else {
                        return Err(refused(i, "an inline partial's name must be written out in quotes".into()));
                    };
                    if let Some(body) = &d.template {
                        self.inline.entry(name.clone()).or_default().push((file.clone(), body));
                        self.collect_inline(file, body, level + 1)?;
                    }
                }
                TemplateElement::HelperBlock(h) => {
                    for inner in [&h.template, &h.inverse].into_iter().flatten() {
                        self.collect_inline(file, inner, level + 1)?;
                    }
                }
                TemplateElement::DecoratorBlock(d) | TemplateElement::PartialBlock(d) => {
                    if let Some(inner) = &d.template {
                        self.collect_inline(file, inner, level + 1)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The deepest nesting a render of `t` (written in the file `name`)
    /// reaches, from `level` down.
    fn depth_of(&mut self, name: &Name, t: &'a Template, level: usize) -> Result<usize, Refused> {
        let mut deepest = 0;
        for (i, e) in t.elements.iter().enumerate() {
            let line = t.mapping.get(i).map(|m| m.0);
            let at = |reason: String| Refused { reason, partial: name.clone(), line };
            let params = element_params_depth(e);
            if level + 1 + params > MAX_NESTING {
                return Err(at(too_deep()));
            }
            let inner = match e {
                TemplateElement::HelperBlock(h) => {
                    let mut d = 0;
                    for body in [&h.template, &h.inverse].into_iter().flatten() {
                        d = d.max(self.depth_of(name, body, level + 1)?);
                    }
                    d
                }
                TemplateElement::DecoratorBlock(d) => {
                    // An inline partial's body is walked where it is used.
                    if is_inline(d) {
                        0
                    } else {
                        d.template.as_ref().map(|body| self.depth_of(name, body, level + 1)).transpose()?.unwrap_or(0)
                    }
                }
                TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                    let Some(called) = literal_name(&d.name) else {
                        return Err(at("a partial's name must be written out, not computed while rendering \
                             ({{> (expression)}} is refused)"
                            .into()));
                    };
                    let block = match &d.template {
                        Some(content) if !writes_nothing(content) => {
                            return Err(at(format!(
                                "the content of block partial {{{{#> {called}}}}} may only define inline partials: \
                                 Handlebars renders it before the partial, outside the render budget \
                                 (write {{{{#*inline \"content\"}}}}...{{{{/inline}}}} inside it, or pass values as \
                                 parameters)"
                            )));
                        }
                        Some(content) => self.depth_of(name, content, level + 1)?,
                        None => 0,
                    };
                    let partial =
                        if called == "@partial-block" { 0 } else { self.partial_depth(&called, line, name, level)? };
                    block.max(partial)
                }
                _ => 0,
            };
            let total = 1 + params.max(inner);
            if level + total > MAX_NESTING {
                return Err(at(too_deep()));
            }
            deepest = deepest.max(total);
        }
        Ok(deepest)
    }

    /// The depth of rendering the partial `called` (from `line` of
    /// `caller`, at `level`): every template that name may reach.
    fn partial_depth(
        &mut self,
        called: &str,
        line: Option<usize>,
        caller: &Name,
        level: usize,
    ) -> Result<usize, Refused> {
        if let Some(start) = self.path.iter().position(|n| n == called) {
            let mut names: Vec<String> = self.path[start..].iter().map(|n| self.shown(n)).collect();
            names.push(self.shown(called));
            return Err(Refused {
                reason: format!("partials include each other in a loop: {}", names.join(" → ")),
                partial: caller.clone(),
                line,
            });
        }
        if let Some(&d) = self.depth.get(called) {
            return Ok(d);
        }
        self.path.push(called.to_owned());
        let mut targets: Vec<(Name, &'a Template)> = self.inline.get(called).cloned().unwrap_or_default();
        targets.extend(self.partials.get(called).map(|t| (Some(called.to_owned()), *t)));
        let mut deepest = 0;
        for (file, t) in targets {
            deepest = deepest.max(self.depth_of(&file, t, level + 1)?);
        }
        self.path.pop();
        self.depth.insert(called.to_owned(), deepest);
        Ok(deepest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "/root";

    fn compile(source: &str) -> Template {
        Template::compile(source).unwrap()
    }

    fn check(root: &str, partials: &[(&str, &str)]) -> Result<(), Refused> {
        let compiled: Vec<(String, Template)> = partials.iter().map(|(n, s)| (n.to_string(), compile(s))).collect();
        let map: HashMap<String, &Template> = compiled.iter().map(|(n, t)| (n.clone(), t)).collect();
        check_partials(&compile(root), ROOT, "main.hbs", &map)
    }

    #[test]
    fn loops_through_inline_partials_are_refused_with_their_names() {
        let err =
            check(r#"{{#*inline "a"}}{{> b}}{{/inline}}{{#*inline "b"}}{{> a}}{{/inline}}{{> a}}"#, &[]).unwrap_err();
        assert_eq!(err.reason, "partials include each other in a loop: a → b → a");
        let err = check("x\n{{#if (eq feedback \"boom\")}}{{> a}}{{/if}}", &[("a", "{{> b}}"), ("b", "\n{{> a}}")])
            .unwrap_err();
        assert_eq!(err.reason, "partials include each other in a loop: a → b → a");
        assert_eq!((err.partial.as_deref(), err.line), (Some("b"), Some(2)));
        assert!(check("{{> a}}", &[("a", "{{> a}}")]).is_err(), "a partial that includes itself");
    }

    #[test]
    fn a_partial_that_names_the_template_itself_is_a_loop() {
        let err =
            check(&format!(r#"{{{{#*inline "x"}}}}{{{{> {ROOT}}}}}{{{{/inline}}}}{{{{> x}}}}"#), &[]).unwrap_err();
        assert_eq!(err.reason, "partials include each other in a loop: main.hbs → x → main.hbs");
        let err = check("{{> a}}", &[("a", &format!("{{{{> {ROOT}}}}}"))]).unwrap_err();
        assert_eq!(err.reason, "partials include each other in a loop: main.hbs → a → main.hbs");
    }

    #[test]
    fn inline_partials_are_named_in_quotes_only() {
        let err = check("{{#*inline feedback}}{{> boom}}{{/inline}}{{> boom}}", &[]).unwrap_err();
        assert!(err.reason.contains("name must be written out in quotes"), "{}", err.reason);
    }

    #[test]
    fn block_partials_may_only_define_inline_partials() {
        let layout = [("layout", "[{{> content}}]"), ("c", "x")];
        check("{{#> layout}}\n  {{#*inline \"content\"}}{{> c}}{{/inline}}\n{{/layout}}", &layout).unwrap();
        let err = check("\n{{#> layout}}{{#each path}}{{json @root}}{{/each}}{{/layout}}", &layout).unwrap_err();
        assert!(err.reason.contains("may only define inline partials"), "{}", err.reason);
        assert_eq!(err.line, Some(2));
        assert!(check("{{#> missing}}fallback {{x}}{{/missing}}", &[]).is_err());
    }

    #[test]
    fn shared_partials_and_partial_blocks_are_no_loop() {
        check("{{> a}}{{> b}}", &[("a", "{{> c}}"), ("b", "{{> c}}{{> c}}"), ("c", "x")]).unwrap();
        check("{{#> layout}}{{/layout}}", &[("layout", "[{{> @partial-block}}]")]).unwrap();
        check("{{> missing}}", &[]).unwrap();
        check("{{> a}}", &[("a", "ok"), ("z", "{{> z}}")]).unwrap();
    }

    #[test]
    fn computed_partial_names_are_refused() {
        let err = check("\n{{> (lookup this \"name\")}}", &[]).unwrap_err();
        assert!(err.reason.contains("must be written out"), "{}", err.reason);
        assert_eq!(err.line, Some(2));
    }

    #[test]
    fn nesting_is_counted_through_partials() {
        let nested = |n: usize, body: &str| "{{#if x}}".repeat(n) + body + &"{{/if}}".repeat(n);
        check(&nested(MAX_NESTING - 1, "x"), &[]).unwrap();
        assert!(check(&nested(MAX_NESTING + 1, "x"), &[]).is_err());
        let half = MAX_NESTING / 2 + 1;
        let err = check(&nested(half, "{{> a}}"), &[("a", &nested(half, "x"))]).unwrap_err();
        assert!(err.reason.contains("nested deeper"), "{}", err.reason);
    }

    /// Runs `f` on a thread with the 2 MiB stack of the threads renders
    /// run on.
    fn on_small_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| std::thread::Builder::new().stack_size(2 << 20).spawn_scoped(s, f).unwrap().join())
            .unwrap()
    }

    #[test]
    fn source_nesting_is_refused_before_parsing_whatever_hides_it() {
        let deep = "{{#if a}}".repeat(100_000);
        let hidden = [
            deep.clone(),
            format!("\\\\{deep}"),
            format!("{{{{x.[']}}}}{deep}"),
            format!("{{{{!-- }}}}{deep}"),
            format!("{{{{{{{{raw}}}}}}}}{{{{{{{{~/raw}}}}}}}}{deep}"),
            format!("{{{{#if a}}}}{}{{{{/if}}}}", "{{else if b}}".repeat(100_000)),
            format!("{{{{#if a}}}}{}{{{{/if}}}}", "{{^}}".repeat(100_000)),
            format!("{{{{{}x{}}}}}", "(eq ".repeat(10_000), " 1)".repeat(10_000)),
            format!("{{{{eq x {}}}}}", "[".repeat(10_000)),
        ];
        for source in hidden {
            let (reason, line) = on_small_stack(|| check_source_nesting(&source)).unwrap_err();
            assert!(reason.contains("nested deeper"), "{reason}");
            assert_eq!(line, 1);
        }
        // JSON text and parentheses in text are not nesting.
        let fine = format!(
            "{}{{{{#if a}}}}:( ({{{{x}}}}{{{{else if b}}}}y{{{{else}}}}z{{{{/if}}}}{}",
            "{\"a\": [{\"b\": [".repeat(60),
            "]}]}".repeat(60)
        );
        check_source_nesting(&fine).unwrap();
        check_source_nesting("{{#each a}}{{#if (eq (len b) \"(\")}}x{{/if}}{{/each}}").unwrap();
    }
}
