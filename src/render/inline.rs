//! Partials copied into the template that includes them, at compile time.
//!
//! Handlebars renders `{{> name}}` by copying the whole current context
//! (the event) into a new block first: on the shipped templates that copy
//! was half the time of a render. A plain `{{> name}}` renders exactly as
//! the partial's own elements would in its place, so where nothing can
//! tell the two apart the partial's elements replace the tag. Anything
//! else stays a real partial: a parameter or hash (a different context),
//! a tag after whitespace (Handlebars indents every line the partial
//! writes by that whitespace), a block
//! partial, a partial that includes partials or uses decorators or `../`
//! (which would climb from a different block), a tag inside a block with
//! block parameters (a partial does not see them), and every tag of a
//! template that defines inline partials (those take precedence by name).

use handlebars::template::{DecoratorTemplate, Template, TemplateElement};
use std::collections::HashMap;

/// Partials that may be copied in, by name: their compiled form.
pub struct Inlinable(HashMap<String, Template>);

impl Inlinable {
    /// Picks from `partials` (name → source and compiled form) those whose
    /// elements behave the same when copied in.
    pub fn new<'a>(partials: impl IntoIterator<Item = (&'a str, &'a str, &'a Template)>) -> Inlinable {
        let plain = partials
            .into_iter()
            .filter(|(_, source, compiled)| !source.contains("../") && !has_partials_or_decorators(compiled))
            .map(|(name, _, compiled)| (name.to_owned(), compiled.clone()))
            .collect();
        Inlinable(plain)
    }

    /// `template` with every plain partial tag replaced by the partial's
    /// elements.
    pub fn apply(&self, template: &Template) -> Template {
        if self.0.is_empty() || has_decorators(template) {
            return template.clone();
        }
        self.copy_in(template, false)
    }

    fn copy_in(&self, template: &Template, in_block_params: bool) -> Template {
        let mut out = Template::new();
        out.name.clone_from(&template.name);
        for (i, element) in template.elements.iter().enumerate() {
            let mapping = template.mapping.get(i).cloned();
            let replacement = match element {
                TemplateElement::PartialExpression(d) if !in_block_params => self.plain(d),
                _ => None,
            };
            match replacement {
                Some(partial) => {
                    for inner in &partial.elements {
                        out.elements.push(inner.clone());
                        if let Some(m) = &mapping {
                            // Errors inside point at the tag that included it.
                            out.mapping.push(m.clone());
                        }
                    }
                }
                None => {
                    out.elements.push(match element {
                        TemplateElement::HelperBlock(h) => {
                            let mut h = h.clone();
                            let hidden = in_block_params || h.block_param.is_some();
                            h.template = h.template.as_ref().map(|t| self.copy_in(t, hidden));
                            h.inverse = h.inverse.as_ref().map(|t| self.copy_in(t, hidden));
                            TemplateElement::HelperBlock(h)
                        }
                        other => other.clone(),
                    });
                    if let Some(m) = mapping {
                        out.mapping.push(m);
                    }
                }
            }
        }
        out
    }

    fn plain(&self, tag: &DecoratorTemplate) -> Option<&Template> {
        if !tag.params.is_empty() || !tag.hash.is_empty() || tag.template.is_some() || tag.indent.is_some() {
            return None;
        }
        self.0.get(tag.name.as_name()?)
    }
}

fn any_element(template: &Template, pred: &impl Fn(&TemplateElement) -> bool) -> bool {
    template.elements.iter().any(|e| {
        pred(e)
            || match e {
                TemplateElement::HelperBlock(h) => {
                    h.template.as_ref().is_some_and(|t| any_element(t, pred))
                        || h.inverse.as_ref().is_some_and(|t| any_element(t, pred))
                }
                TemplateElement::DecoratorBlock(d) | TemplateElement::PartialBlock(d) => {
                    d.template.as_ref().is_some_and(|t| any_element(t, pred))
                }
                _ => false,
            }
    })
}

fn has_decorators(template: &Template) -> bool {
    any_element(template, &|e| {
        matches!(e, TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_))
    })
}

fn has_partials_or_decorators(template: &Template) -> bool {
    any_element(template, &|e| {
        matches!(
            e,
            TemplateElement::DecoratorExpression(_)
                | TemplateElement::DecoratorBlock(_)
                | TemplateElement::PartialExpression(_)
                | TemplateElement::PartialBlock(_)
        )
    })
}
