//! The executor of a parsed Go template over [`V`] values, with bounds on
//! output, work, value size and template-call depth so that no template can
//! exhaust memory, time or the stack.

use super::funcs;
use super::lex::Number;
use super::parse::{Arg, BranchKind, Cmd, Node, Pipe, Tree, parse};
use super::printf::print_top;
use super::value::V;

/// The most output one template may write.
pub(crate) const MAX_OUTPUT: usize = 1 << 20;
/// The most work (nodes, loop iterations, function calls weighted by the
/// size of their results) one template may do.
const MAX_STEPS: u64 = 2_000_000;
/// The largest value (nodes plus bytes) a function may return.
pub(crate) const MAX_VALUE: usize = 1 << 20;
/// How deep `template` calls and `tpl` may nest.
const MAX_CALL_DEPTH: usize = 50;

/// How a missing map key evaluates.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ExecOptions {
    /// `missingkey=error`.
    pub(crate) missing_key_error: bool,
}

/// Executes `tree` with `data` as dot and `$`.
///
/// # Errors
/// When an action fails or a bound is exceeded.
pub(crate) fn execute(tree: &Tree, data: &V, options: ExecOptions) -> Result<String, String> {
    let mut state = State {
        tree,
        vars: vec![("$".to_string(), data.clone())],
        out: String::new(),
        options,
        steps: 0,
        depth: 0,
    };
    state.walk(&tree.root, data)?;
    Ok(state.out)
}

/// Whether a list of nodes ran to its end or hit `break`/`continue`.
enum Flow {
    Normal,
    Break,
    Continue,
}

struct State<'t> {
    tree: &'t Tree,
    /// Variables in scope, innermost last.
    vars: Vec<(String, V)>,
    out: String,
    options: ExecOptions,
    steps: u64,
    depth: usize,
}

impl State<'_> {
    fn charge(&mut self, steps: u64) -> Result<(), String> {
        self.steps += steps;
        if self.steps > MAX_STEPS {
            return Err(format!("template does more than {MAX_STEPS} steps of work"));
        }
        Ok(())
    }

    fn write(&mut self, text: &str) -> Result<(), String> {
        if self.out.len() + text.len() > MAX_OUTPUT {
            return Err(format!("output larger than {MAX_OUTPUT} bytes"));
        }
        self.out.push_str(text);
        Ok(())
    }

    fn walk(&mut self, nodes: &[Node], dot: &V) -> Result<Flow, String> {
        for node in nodes {
            self.charge(1)?;
            match node {
                Node::Text(t) => self.write(t)?,
                Node::Action(pipe) => {
                    let v = self.pipe(pipe, dot)?;
                    if pipe.decl.is_empty() {
                        let text = print_top(&v)?;
                        self.write(&text)?;
                    }
                }
                Node::Branch {
                    kind,
                    pipe,
                    body,
                    otherwise,
                } => {
                    let scope = self.vars.len();
                    let flow = match kind {
                        BranchKind::If => {
                            if self.pipe(pipe, dot)?.truthy() {
                                self.walk(body, dot)?
                            } else {
                                self.walk(otherwise, dot)?
                            }
                        }
                        BranchKind::With => {
                            let v = self.pipe(pipe, dot)?;
                            if v.truthy() {
                                self.walk(body, &v)?
                            } else {
                                self.walk(otherwise, dot)?
                            }
                        }
                        BranchKind::Range => self.range(pipe, body, otherwise, dot)?,
                    };
                    self.vars.truncate(scope);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Call { name, pipe } => {
                    let body = self
                        .tree
                        .defines
                        .get(name)
                        .ok_or_else(|| format!("no such template {name:?}"))?;
                    let data = match pipe {
                        Some(p) => self.pipe(p, dot)?,
                        None => V::Null,
                    };
                    self.depth += 1;
                    if self.depth > MAX_CALL_DEPTH {
                        return Err(format!("template calls nest deeper than {MAX_CALL_DEPTH}"));
                    }
                    // A called template sees only its own `$`.
                    let outer =
                        std::mem::replace(&mut self.vars, vec![("$".to_string(), data.clone())]);
                    let result = self.walk(body, &data);
                    self.vars = outer;
                    self.depth -= 1;
                    result?;
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn range(
        &mut self,
        pipe: &Pipe,
        body: &[Node],
        otherwise: &[Node],
        dot: &V,
    ) -> Result<Flow, String> {
        let value = self.commands(&pipe.cmds, dot)?;
        // Go sorts map keys; a BTreeMap iterates sorted. The entries are
        // copied first so the body may `set` the map it ranges over.
        let items: Vec<(V, V)> = match &value {
            V::Null => Vec::new(),
            V::List(l) => {
                l.0.iter()
                    .enumerate()
                    .map(|(i, v)| (V::Int(i as i64), v.clone()))
                    .collect()
            }
            V::Map(m) => {
                m.0.borrow()
                    .iter()
                    .map(|(k, v)| (V::str(k.as_str()), v.clone()))
                    .collect()
            }
            V::Int(n) => {
                if *n > 0 {
                    self.charge(*n as u64)?;
                }
                (0..*n).map(|i| (V::Int(i), V::Int(i))).collect()
            }
            other => {
                return Err(format!(
                    "range can't iterate over {}",
                    super::printf::fmt_v(other)?
                ));
            }
        };
        if items.is_empty() {
            return self.walk(otherwise, dot);
        }
        let scope = self.vars.len();
        for (key, item) in items {
            self.charge(1)?;
            match (pipe.decl.as_slice(), pipe.assign) {
                ([], _) => {}
                ([v], false) => self.vars.push((v.clone(), item.clone())),
                ([k, v], false) => {
                    self.vars.push((k.clone(), key));
                    self.vars.push((v.clone(), item.clone()));
                }
                ([v], true) => self.assign(v, item.clone())?,
                ([k, v], true) => {
                    self.assign(k, key)?;
                    self.assign(v, item.clone())?;
                }
                _ => return Err("too many declarations in range".into()),
            }
            let flow = self.walk(body, &item)?;
            self.vars.truncate(scope);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    fn assign(&mut self, name: &str, value: V) -> Result<(), String> {
        let slot = self
            .vars
            .iter_mut()
            .rev()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("undefined variable: {name}"))?;
        slot.1 = value;
        Ok(())
    }

    fn var(&self, name: &str) -> Result<V, String> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("undefined variable: {name}"))
    }

    fn pipe(&mut self, pipe: &Pipe, dot: &V) -> Result<V, String> {
        let value = self.commands(&pipe.cmds, dot)?;
        for name in &pipe.decl {
            if pipe.assign {
                self.assign(name, value.clone())?;
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn commands(&mut self, cmds: &[Cmd], dot: &V) -> Result<V, String> {
        let mut value = None;
        for cmd in cmds {
            value = Some(self.command(cmd, dot, value)?);
        }
        value.ok_or_else(|| "empty pipeline".to_string())
    }

    fn command(&mut self, cmd: &Cmd, dot: &V, last: Option<V>) -> Result<V, String> {
        let Some(first) = cmd.args.first() else {
            return Err("empty command".into());
        };
        if let Arg::Func(name) = first {
            return self.call(name, &cmd.args[1..], dot, last);
        }
        if cmd.args.len() > 1 || last.is_some() {
            return Err(format!(
                "can't give argument to non-function {}",
                describe(first)
            ));
        }
        if matches!(first, Arg::Nil) {
            return Err("nil is not a command".into());
        }
        self.arg(first, dot)
    }

    fn arg(&mut self, arg: &Arg, dot: &V) -> Result<V, String> {
        match arg {
            Arg::Dot => Ok(dot.clone()),
            Arg::Nil => Ok(V::Null),
            Arg::Bool(b) => Ok(V::Bool(*b)),
            Arg::Number(Number::Int(i)) => Ok(V::Int(*i)),
            Arg::Number(Number::Float(f)) => Ok(V::Float(*f)),
            Arg::Str(s) => Ok(V::str(s.as_str())),
            Arg::Field(names) => self.fields(dot.clone(), names),
            Arg::Var(name, names) => {
                let v = self.var(name)?;
                self.fields(v, names)
            }
            Arg::Func(name) => self.call(name, &[], dot, None),
            Arg::Pipe(p) => self.pipe(p, dot),
            Arg::Chain(term, names) => {
                let v = self.arg(term, dot)?;
                self.fields(v, names)
            }
        }
    }

    fn fields(&self, mut value: V, names: &[String]) -> Result<V, String> {
        for name in names {
            value = match &value {
                V::Map(m) => match m.0.borrow().get(name) {
                    Some(v) => v.clone(),
                    None if self.options.missing_key_error => {
                        return Err(format!("map has no entry for key {name:?}"));
                    }
                    None => V::Null,
                },
                V::Null if self.options.missing_key_error => {
                    return Err(format!("nil pointer evaluating interface {{}}.{name}"));
                }
                V::Null => V::Null,
                other => {
                    return Err(format!(
                        "can't evaluate field {name} in type {}",
                        other.type_name()
                    ));
                }
            };
        }
        Ok(value)
    }

    fn call(&mut self, name: &str, args: &[Arg], dot: &V, last: Option<V>) -> Result<V, String> {
        self.charge(1)?;
        // `and` and `or` stop at the first argument that decides them.
        if name == "and" || name == "or" {
            let total = args.len() + usize::from(last.is_some());
            if total == 0 {
                return Err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            let mut result = V::Null;
            for arg in args {
                result = self.arg(arg, dot)?;
                if result.truthy() == (name == "or") {
                    return Ok(result);
                }
            }
            return Ok(last.unwrap_or(result));
        }
        let mut values = Vec::with_capacity(args.len() + 1);
        for arg in args {
            values.push(self.arg(arg, dot)?);
        }
        values.extend(last);
        let result = if name == "tpl" {
            self.tpl(values)
        } else {
            funcs::call(name, values)
        }
        .map_err(|e| format!("error calling {name}: {e}"))?;
        if matches!(result, V::Str(_) | V::List(_) | V::Map(_)) {
            let size = result
                .measure(MAX_VALUE)
                .map_err(|e| format!("error calling {name}: {e}"))?;
            self.charge(size as u64 / 64)?;
        }
        Ok(result)
    }

    /// Argo CD's `tpl`: renders a string as a template with the given data,
    /// with this template's options; `<no value>` becomes empty, as there.
    fn tpl(&mut self, args: Vec<V>) -> Result<V, String> {
        let [text, data] = <[V; 2]>::try_from(args)
            .map_err(|a| format!("wrong number of args: want 2 got {}", a.len()))?;
        let V::Str(text) = text else {
            return Err(format!(
                "wrong type for value; expected string; got {}",
                text.type_name()
            ));
        };
        self.depth += 1;
        if self.depth > MAX_CALL_DEPTH {
            return Err(format!("tpl calls nest deeper than {MAX_CALL_DEPTH}"));
        }
        let result = parse(&text).and_then(|tree| {
            let mut inner = State {
                tree: &tree,
                vars: vec![("$".to_string(), data.clone())],
                out: String::new(),
                options: self.options,
                steps: self.steps,
                depth: self.depth,
            };
            inner.walk(&tree.root, &data)?;
            self.steps = inner.steps;
            Ok(inner.out)
        });
        self.depth -= 1;
        Ok(V::str(result?.replace("<no value>", "")))
    }
}

fn describe(arg: &Arg) -> String {
    match arg {
        Arg::Dot => ".".into(),
        Arg::Nil => "nil".into(),
        Arg::Bool(b) => b.to_string(),
        Arg::Number(Number::Int(i)) => i.to_string(),
        Arg::Number(Number::Float(f)) => f.to_string(),
        Arg::Str(s) => format!("{s:?}"),
        Arg::Field(f) => format!(".{}", f.join(".")),
        Arg::Var(v, f) if f.is_empty() => v.clone(),
        Arg::Var(v, f) => format!("{v}.{}", f.join(".")),
        Arg::Func(n) => n.clone(),
        Arg::Pipe(_) => "(pipeline)".into(),
        Arg::Chain(_, f) => format!("(pipeline).{}", f.join(".")),
    }
}
