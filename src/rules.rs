//! Route conditions: a table of `path = value` equalities, or a CEL
//! expression over the event. Evaluation is pure and total: a missing field
//! makes a condition false, never an error.

use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// A compiled route condition.
#[derive(Clone)]
pub enum Condition {
    /// No `when`: the route matches every event.
    Always,
    /// Every path equals its value (an array value means "any of these").
    Table(Vec<Equality>),
    Cel(Arc<CelCondition>),
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Always => write!(f, "Always"),
            Condition::Table(eqs) => f.debug_list().entries(eqs.iter().map(|e| &e.path)).finish(),
            Condition::Cel(c) => write!(f, "Cel({:?})", c.source),
        }
    }
}

/// One `path = value` line of a table condition.
#[derive(Debug, Clone)]
pub struct Equality {
    pub path: String,
    segments: Vec<String>,
    pub expected: Value,
}

/// A CEL expression, with its top-level `&&` parts compiled on their own
/// so `render` can say which part did not hold.
pub struct CelCondition {
    pub source: String,
    program: cel::Program,
    parts: Vec<CelPart>,
    /// The top-level names it reads (`outcome`, `history`, `event`, ...).
    variables: Vec<String>,
}

struct CelPart {
    source: String,
    program: cel::Program,
    /// The left operand of a comparison, evaluated to show the value seen.
    operand: Option<(String, cel::Program)>,
}

/// Why a condition did or did not hold, for `render`.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Matched,
    /// The first part that did not hold and the value it saw.
    NotMatched {
        condition: String,
        saw: String,
    },
}

impl Condition {
    /// Compiles the table form. Nested tables (TOML's dotted keys) flatten
    /// into dotted paths, so `subscription.plan.interval = "month"` works
    /// quoted or not.
    pub fn table(table: &toml::Table) -> Result<Condition, String> {
        let mut eqs = Vec::new();
        flatten(table, "", &mut eqs)?;
        if eqs.is_empty() {
            return Err("`when` table is empty".into());
        }
        Ok(Condition::Table(eqs))
    }

    /// Compiles a CEL expression.
    ///
    /// Parsing recurses as deep as the expression nests, so it runs on a
    /// thread of its own with room for the parser's own limit, whatever
    /// thread loads the config; and a condition nested deeper than
    /// [`MAX_CEL_DEPTH`] is refused, since evaluating it recurses as deep
    /// on the thread that routes each event.
    pub fn cel(source: &str) -> Result<Condition, String> {
        std::thread::scope(|scope| {
            let compiling = std::thread::Builder::new()
                .name("raaft-cel-compile".into())
                .stack_size(CEL_COMPILE_STACK)
                .spawn_scoped(scope, || Self::cel_here(source))
                .map_err(|e| format!("cannot compile CEL condition \"{source}\": {e}"))?;
            compiling
                .join()
                .unwrap_or_else(|_| Err(format!("invalid CEL condition \"{source}\": the CEL parser failed on it")))
        })
    }

    fn cel_here(source: &str) -> Result<Condition, String> {
        let program = compile(source)?;
        let depth = depth(program.expression());
        if depth > MAX_CEL_DEPTH {
            return Err(format!(
                "invalid CEL condition \"{source}\": nested {depth} levels deep, more than the {MAX_CEL_DEPTH} a condition may use"
            ));
        }
        let parts = split_top_level(source, "&&")
            .into_iter()
            .filter_map(|part| {
                let program = cel::Program::compile(part).ok()?;
                let operand =
                    left_operand(part).and_then(|op| cel::Program::compile(op).ok().map(|p| (op.to_owned(), p)));
                Some(CelPart { source: part.to_owned(), program, operand })
            })
            .collect();
        let mut variables: Vec<String> = program.references().variables().into_iter().map(str::to_owned).collect();
        variables.sort();
        Ok(Condition::Cel(Arc::new(CelCondition { source: source.to_owned(), program, parts, variables })))
    }

    /// The top-level names of the event a CEL condition reads; none for
    /// the other forms, which read the event without CEL.
    pub fn cel_variables(&self) -> &[String] {
        match self {
            Condition::Cel(c) => &c.variables,
            _ => &[],
        }
    }

    /// The names a CEL condition reads from the event: its identifiers but
    /// those its macros bind (`p` in `path.exists(p, p.type == "offer")`).
    /// None for the other forms.
    pub fn cel_names(&self) -> Vec<String> {
        match self {
            Condition::Cel(c) => {
                let mut names = std::collections::BTreeSet::new();
                free_names(c.program.expression(), &mut Vec::new(), &mut names);
                names.into_iter().collect()
            }
            _ => Vec::new(),
        }
    }

    /// Each path of a table condition with the value it is compared with.
    pub fn table_values(&self) -> Vec<(&str, &Value)> {
        match self {
            Condition::Table(eqs) => eqs.iter().map(|e| (e.path.as_str(), &e.expected)).collect(),
            _ => Vec::new(),
        }
    }

    /// The paths a table condition compares (`customer.id`); none for the
    /// other forms.
    pub fn table_paths(&self) -> Vec<&str> {
        match self {
            Condition::Table(eqs) => eqs.iter().map(|e| e.path.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the condition holds for `event`.
    pub fn matches(&self, event: &Value, ctx: &mut EvalContext) -> bool {
        match self {
            Condition::Always => true,
            Condition::Table(eqs) => eqs.iter().all(|eq| eq.holds(event)),
            Condition::Cel(c) => ctx.run(&c.program, event) == Some(cel::Value::Bool(true)),
        }
    }

    /// As [`Condition::matches`], saying what did not hold.
    pub fn explain(&self, event: &Value, ctx: &mut EvalContext) -> Verdict {
        if self.matches(event, ctx) {
            return Verdict::Matched;
        }
        match self {
            Condition::Always => Verdict::Matched,
            Condition::Table(eqs) => {
                let eq = eqs.iter().find(|eq| !eq.holds(event)).expect("a failing table has a failing line");
                Verdict::NotMatched {
                    condition: format!("{} = {}", eq.path, eq.expected),
                    saw: describe(lookup(event, &eq.segments)),
                }
            }
            Condition::Cel(c) => {
                for part in &c.parts {
                    let result = ctx.run_result(&part.program, event);
                    if matches!(result, Ok(cel::Value::Bool(true))) {
                        continue;
                    }
                    let saw = match (&part.operand, result) {
                        (Some((op, program)), _) => match ctx.run_result(program, event) {
                            Ok(v) => format!("{op} = {}", describe_cel(&v)),
                            Err(_) => format!("{op} is missing"),
                        },
                        (None, Ok(v)) => describe_cel(&v),
                        (None, Err(e)) => format!("error: {e}"),
                    };
                    return Verdict::NotMatched { condition: part.source.clone(), saw };
                }
                Verdict::NotMatched { condition: c.source.clone(), saw: "false".into() }
            }
        }
    }
}

/// The deepest CEL condition accepted, in levels of the parsed expression
/// (`a == 1 && b == 2` is 3; real routing rules stay well under 10).
pub const MAX_CEL_DEPTH: usize = 32;

/// Room for the CEL parser: its own limit (96 nested expressions) takes a
/// few megabytes of stack in an unoptimised build.
const CEL_COMPILE_STACK: usize = 64 << 20;

/// Levels of a parsed CEL expression.
fn depth(e: &cel::IdedExpr) -> usize {
    use cel::common::ast::{EntryExpr, Expr};
    let entry = |e: &cel::common::ast::IdedEntryExpr| match &e.expr {
        EntryExpr::StructField(f) => depth(&f.value),
        EntryExpr::MapEntry(m) => depth(&m.key).max(depth(&m.value)),
    };
    1 + match &e.expr {
        Expr::Call(c) => c.target.iter().map(|t| depth(t)).chain(c.args.iter().map(depth)).max().unwrap_or(0),
        Expr::Comprehension(c) => [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result]
            .into_iter()
            .map(depth)
            .max()
            .unwrap_or(0),
        Expr::List(l) => l.elements.iter().map(depth).max().unwrap_or(0),
        Expr::Map(m) => m.entries.iter().map(entry).max().unwrap_or(0),
        Expr::Struct(s) => s.entries.iter().map(entry).max().unwrap_or(0),
        Expr::Select(s) => depth(&s.operand),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => 0,
    }
}

/// The identifiers of `e` not bound by an enclosing macro.
fn free_names(e: &cel::IdedExpr, bound: &mut Vec<String>, out: &mut std::collections::BTreeSet<String>) {
    use cel::common::ast::{EntryExpr, Expr};
    let mut entry = |e: &cel::common::ast::IdedEntryExpr, bound: &mut Vec<String>| match &e.expr {
        EntryExpr::StructField(f) => free_names(&f.value, bound, out),
        EntryExpr::MapEntry(m) => {
            free_names(&m.key, bound, out);
            free_names(&m.value, bound, out);
        }
    };
    match &e.expr {
        Expr::Ident(name) if !bound.contains(name) => {
            out.insert(name.clone());
        }
        Expr::Call(c) => {
            for t in c.target.iter() {
                free_names(t, bound, out);
            }
            for a in &c.args {
                free_names(a, bound, out);
            }
        }
        Expr::Comprehension(c) => {
            free_names(&c.iter_range, bound, out);
            let before = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            for inner in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                free_names(inner, bound, out);
            }
            bound.truncate(before);
        }
        Expr::List(l) => {
            for item in &l.elements {
                free_names(item, bound, out);
            }
        }
        Expr::Map(m) => {
            for item in &m.entries {
                entry(item, bound);
            }
        }
        Expr::Struct(st) => {
            for item in &st.entries {
                entry(item, bound);
            }
        }
        Expr::Select(sel) => free_names(&sel.operand, bound, out),
        _ => {}
    }
}

fn compile(source: &str) -> Result<cel::Program, String> {
    if source.trim().is_empty() {
        return Err("empty CEL expression".into());
    }
    cel::Program::compile(source).map_err(|e| {
        // The parser's message is "ERROR: <input>:1:53: Syntax error: ..."
        // followed by a drawing of the expression; keep one line.
        let msg = e.to_string();
        let first = msg.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("syntax error");
        let first = first.trim_start_matches("ERROR:").trim();
        let first = first.strip_prefix("<input>:").map(|rest| format!("at {rest}")).unwrap_or_else(|| first.to_owned());
        format!("invalid CEL condition \"{source}\": {first}")
    })
}

fn flatten(table: &toml::Table, prefix: &str, out: &mut Vec<Equality>) -> Result<(), String> {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::Table(inner) => flatten(inner, &path, out)?,
            other => {
                let expected = serde_json::to_value(other).map_err(|e| format!("{path}: {e}"))?;
                out.push(Equality { segments: parse_path(&path), path, expected });
            }
        }
    }
    Ok(())
}

/// Splits `path[1].selectedChoice.text` or `path.1.selectedChoice.text`
/// into its segments.
pub fn parse_path(path: &str) -> Vec<String> {
    path.replace('[', ".").replace(']', "").split('.').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// The value at `segments`, if any. Array indexes are segments of digits.
pub fn lookup<'a>(value: &'a Value, segments: &[String]) -> Option<&'a Value> {
    segments.iter().try_fold(value, |v, seg| match v {
        Value::Object(map) => map.get(seg),
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

impl Equality {
    fn holds(&self, event: &Value) -> bool {
        let Some(actual) = lookup(event, &self.segments) else { return false };
        match &self.expected {
            Value::Array(options) if !actual.is_array() => options.iter().any(|o| json_eq(actual, o)),
            expected => json_eq(actual, expected),
        }
    }
}

/// Equality where 10 and 10.0 are the same number.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        _ => a == b,
    }
}

fn describe(v: Option<&Value>) -> String {
    match v {
        None => "missing".into(),
        Some(v) => v.to_string(),
    }
}

fn describe_cel(v: &cel::Value) -> String {
    match v {
        cel::Value::String(s) => format!("{:?}", s.as_str()),
        cel::Value::Int(i) => i.to_string(),
        cel::Value::UInt(u) => u.to_string(),
        cel::Value::Float(f) => f.to_string(),
        cel::Value::Bool(b) => b.to_string(),
        cel::Value::Null => "null".into(),
        other => format!("{other:?}"),
    }
}

/// Splits `source` at every top-level occurrence of `op` (outside
/// parentheses, brackets and string literals).
fn split_top_level<'a>(source: &'a str, op: &str) -> Vec<&'a str> {
    let bytes = source.as_bytes();
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start, mut i) = (0i32, None::<u8>, 0, 0);
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                _ if depth == 0 && source[i..].starts_with(op) => {
                    parts.push(source[start..i].trim());
                    i += op.len();
                    start = i;
                    continue;
                }
                _ => {}
            },
        }
        i += 1;
    }
    parts.push(source[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

/// The left side of a top-level comparison, e.g. `subscription.plan.amount`
/// in `subscription.plan.amount >= 100`.
fn left_operand(part: &str) -> Option<&str> {
    for op in ["==", "!=", ">=", "<=", " in ", ">", "<"] {
        let pieces = split_top_level(part, op);
        if pieces.len() == 2 {
            return Some(pieces[0]);
        }
    }
    None
}

/// CEL's built-in functions, registered once: building them is most of
/// what a fresh `cel::Context` costs.
static CEL_FUNCTIONS: std::sync::LazyLock<cel::Context<'static>> = std::sync::LazyLock::new(cel::Context::default);

/// Per-event evaluation state: the event converted to CEL values once,
/// shared by every route's condition.
#[derive(Default)]
pub struct EvalContext {
    ctx: Option<cel::Context<'static>>,
    /// Only these top-level fields are converted (`None`: all of them):
    /// converting a field costs as much as it is large, and the relay's
    /// `history` alone is larger than most events.
    only: Option<Arc<[String]>>,
}

impl EvalContext {
    /// A context that converts only the top-level fields named in
    /// `variables` (what the conditions evaluated in it read).
    pub fn reading(variables: Arc<[String]>) -> EvalContext {
        EvalContext { ctx: None, only: Some(variables) }
    }

    fn context(&mut self, event: &Value) -> &cel::Context<'static> {
        let only = self.only.clone();
        self.ctx.get_or_insert_with(|| {
            let mut ctx = CEL_FUNCTIONS.new_inner_scope();
            if let Some(names) = only {
                for name in names.iter() {
                    let value = if name == "event" { Some(event) } else { event.get(name) };
                    if let Some(v) = value.and_then(|v| cel::to_value(v).ok()) {
                        ctx.add_variable_from_value(name.as_str(), v);
                    }
                }
                return ctx;
            }
            if let Ok(whole) = cel::to_value(event) {
                // Top-level fields share the converted event's values.
                if let cel::Value::Map(map) = &whole {
                    for (k, v) in map.map.iter() {
                        if let cel::objects::Key::String(name) = k {
                            ctx.add_variable_from_value(name.as_str(), v.clone());
                        }
                    }
                }
                ctx.add_variable_from_value("event", whole);
            }
            ctx
        })
    }

    fn run_result(&mut self, program: &cel::Program, event: &Value) -> Result<cel::Value, String> {
        let ctx = self.context(event);
        // The CEL interpreter is third-party code: a panic inside it must
        // cost one condition, not the relay.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(ctx))) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the CEL interpreter failed on this event".into()),
        }
    }

    fn run(&mut self, program: &cel::Program, event: &Value) -> Option<cel::Value> {
        self.run_result(program, event).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canceled() -> Value {
        serde_json::from_str(include_str!("../config/events/canceled.json")).unwrap()
    }

    fn table(src: &str) -> Condition {
        let t: toml::Table = toml::from_str(&format!("when = {src}")).unwrap();
        Condition::table(t["when"].as_table().unwrap()).unwrap()
    }

    fn holds(c: &Condition, event: &Value) -> bool {
        c.matches(event, &mut EvalContext::default())
    }

    /// `1 + 1 + ... >= 1` with `terms` ones: `terms + 1` levels deep.
    fn chain(terms: usize) -> String {
        format!("{} >= 1", vec!["1"; terms].join(" + "))
    }

    #[test]
    fn deep_cel_conditions_are_refused_not_a_crash() {
        // The parser's own limit, far past what the calling thread's stack
        // (2 MB for a tokio worker, where a reload compiles) would hold.
        let err = Condition::cel(&format!("{}true{}", "(".repeat(400), ")".repeat(400))).unwrap_err();
        assert!(err.starts_with("invalid CEL condition \"((("), "{err}");
        let err = Condition::cel(&chain(2000)).unwrap_err();
        assert!(err.contains("nested 2001 levels deep, more than the 32 a condition may use"), "{err}");
        let err = Condition::cel(&format!("{}1{} == [[1]]", "[".repeat(40), "]".repeat(40))).unwrap_err();
        assert!(err.contains("levels deep"), "{err}");
        let err = Condition::cel(&chain(MAX_CEL_DEPTH)).unwrap_err();
        assert!(err.contains(&format!("nested {} levels deep", MAX_CEL_DEPTH + 1)), "{err}");
    }

    #[test]
    fn the_deepest_accepted_condition_evaluates_on_a_small_stack() {
        let deepest = Condition::cel(&chain(MAX_CEL_DEPTH - 1)).unwrap();
        let Condition::Cel(c) = &deepest else { unreachable!() };
        assert_eq!(depth(c.program.expression()), MAX_CEL_DEPTH);
        // A tokio worker's stack, in whatever build the tests run.
        let on_worker_stack = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || holds(&deepest, &canceled()))
            .unwrap()
            .join()
            .unwrap();
        assert!(on_worker_stack);
    }

    #[test]
    fn compiling_works_from_any_thread() {
        let cond = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(|| Condition::cel(r#"outcome == "canceled" && subscription.plan.amount >= 10"#).unwrap())
            .unwrap()
            .join()
            .unwrap();
        assert!(holds(&cond, &canceled()));
    }

    #[test]
    fn table_form_compares_every_path() {
        let e = canceled();
        assert!(holds(&table(r#"{ outcome = "canceled" }"#), &e));
        assert!(!holds(&table(r#"{ outcome = "saved" }"#), &e));
        assert!(holds(&table(r#"{ outcome = "canceled", "subscription.plan.interval" = "month" }"#), &e));
        assert!(holds(&table(r#"{ subscription.plan.amount = 49 }"#), &e));
        assert!(holds(&table(r#"{ subscription.plan.amount = 49.0 }"#), &e));
        assert!(holds(&table(r#"{ "path[1].selectedChoice.text" = "Missing features or integrations" }"#), &e));
        assert!(holds(&table(r#"{ outcome = ["saved", "canceled"] }"#), &e));
        assert!(!holds(&table(r#"{ outcome = "canceled", "customer.name" = "Bob" }"#), &e));
    }

    #[test]
    fn missing_fields_make_conditions_false() {
        let e = json!({"outcome": "canceled", "subscription": null});
        assert!(!holds(&table(r#"{ "subscription.plan.amount" = 10 }"#), &e));
        let cel = Condition::cel("subscription.plan.amount >= 100").unwrap();
        assert!(!holds(&cel, &e));
        let cel = Condition::cel("customer.name == 'x'").unwrap();
        assert!(!holds(&cel, &e));
        assert!(!holds(&Condition::cel("path[3].stepType == 'offer'").unwrap(), &json!({"path": []})));
    }

    #[test]
    fn cel_sees_event_fields_with_mixed_numbers() {
        let e = canceled();
        let c = Condition::cel(r#"outcome == "canceled" && subscription.plan.amount >= 49"#).unwrap();
        assert!(holds(&c, &e));
        let c = Condition::cel(r#"outcome == "canceled" && subscription.plan.amount >= 100"#).unwrap();
        assert!(!holds(&c, &e));
        assert!(holds(&Condition::cel("subscription.plan.amount > 48.5").unwrap(), &e));
        assert!(holds(
            &Condition::cel(r#"path[1].selectedChoice.text == "Missing features or integrations""#).unwrap(),
            &e
        ));
        assert!(holds(&Condition::cel(r#"event.outcome == "canceled""#).unwrap(), &e));
        assert!(holds(&Condition::cel(r#"outcome in ["canceled", "aborted"]"#).unwrap(), &e));
        assert!(holds(&Condition::cel(r#"size(feedback) > 10"#).unwrap(), &e));
    }

    #[test]
    fn non_boolean_results_do_not_match() {
        assert!(!holds(&Condition::cel("outcome").unwrap(), &canceled()));
    }

    #[test]
    fn invalid_cel_is_a_compile_error() {
        let err = Condition::cel("outcome == ").unwrap_err();
        assert!(err.contains("invalid CEL condition \"outcome == \": at 1:"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        assert!(Condition::cel("  ").is_err());
    }

    #[test]
    fn explain_names_the_first_failing_part_and_the_value_seen() {
        let e = canceled();
        let c = Condition::cel(r#"outcome == "canceled" && subscription.plan.amount >= 100"#).unwrap();
        let v = c.explain(&e, &mut EvalContext::default());
        assert_eq!(
            v,
            Verdict::NotMatched {
                condition: "subscription.plan.amount >= 100".into(),
                saw: "subscription.plan.amount = 49".into()
            }
        );
        let t = table(r#"{ outcome = "saved" }"#);
        assert_eq!(
            t.explain(&e, &mut EvalContext::default()),
            Verdict::NotMatched { condition: "outcome = \"saved\"".into(), saw: "\"canceled\"".into() }
        );
        let missing = Condition::cel("customer.name == 'x'").unwrap();
        match missing.explain(&json!({}), &mut EvalContext::default()) {
            Verdict::NotMatched { saw, .. } => assert_eq!(saw, "customer.name is missing"),
            v => panic!("{v:?}"),
        }
        assert_eq!(
            c.explain(
                &json!({"outcome":"canceled","subscription":{"plan":{"amount":120}}}),
                &mut EvalContext::default()
            ),
            Verdict::Matched
        );
    }

    #[test]
    fn the_names_a_condition_reads_leave_out_what_its_macros_bind() {
        let names = |src: &str| Condition::cel(src).unwrap().cel_names();
        assert_eq!(names("outcome == canceled"), ["canceled", "outcome"]);
        assert_eq!(names(r#"path.exists(p, p.type == "offer") && has(customer.email)"#), ["customer", "path"]);
        assert!(table(r#"{ outcome = "saved" }"#).cel_names().is_empty());
        assert_eq!(table(r#"{ outcomes = "saved" }"#).table_paths(), ["outcomes"]);
    }

    #[test]
    fn split_respects_strings_and_parentheses() {
        assert_eq!(
            split_top_level(r#"a == "x && y" && (b || c && d)"#, "&&"),
            vec![r#"a == "x && y""#, "(b || c && d)"]
        );
    }
}
