//! The parser of Go's text/template: tokens to a tree of text, actions and
//! control structures, with Go's checks (undefined variables and functions,
//! `break` outside `range`, misplaced `else`/`end`).

use std::collections::HashMap;

use super::funcs;
use super::lex::{Number, Tok, Token, lex, parse_number};

/// How deep control structures and parentheses may nest: bounds the
/// parser's and the executor's recursion.
const MAX_NESTING: usize = 100;

/// A parsed template: the main body and the `define`d templates.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    /// The main template.
    pub(crate) root: Vec<Node>,
    /// Named templates from `define` and `block`.
    pub(crate) defines: HashMap<String, Vec<Node>>,
}

/// A node of the tree.
#[derive(Debug)]
pub(crate) enum Node {
    /// Text, written as is.
    Text(String),
    /// `{{ pipeline }}`: written unless it declares or assigns variables.
    Action(Pipe),
    /// `if`, `with` (dot becomes the value) or `range`.
    Branch {
        /// Which structure.
        kind: BranchKind,
        /// The condition or the ranged-over value.
        pipe: Pipe,
        /// The body.
        body: Vec<Node>,
        /// The `else` body (an `else if` is an `if` inside it).
        otherwise: Vec<Node>,
    },
    /// `{{ template "name" pipeline }}`.
    Call {
        /// The template's name.
        name: String,
        /// Its data (nil without one).
        pipe: Option<Pipe>,
    },
    /// `{{ break }}`.
    Break,
    /// `{{ continue }}`.
    Continue,
}

/// The control structure of a [`Node::Branch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BranchKind {
    /// `if`.
    If,
    /// `with`.
    With,
    /// `range`.
    Range,
}

/// A pipeline: optional variable declarations, then commands joined by `|`.
#[derive(Debug, Default)]
pub(crate) struct Pipe {
    /// `$x :=` / `$i, $v :=` names (with `$`).
    pub(crate) decl: Vec<String>,
    /// `=` rather than `:=`.
    pub(crate) assign: bool,
    /// The commands; each one's result is the last argument of the next.
    pub(crate) cmds: Vec<Cmd>,
}

/// A command: a function and its arguments, or a single operand.
#[derive(Debug)]
pub(crate) struct Cmd {
    /// The operands; the first is the function when it is one.
    pub(crate) args: Vec<Arg>,
}

/// An operand.
#[derive(Debug)]
pub(crate) enum Arg {
    /// `.`.
    Dot,
    /// `nil`.
    Nil,
    /// `true`/`false`.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string.
    Str(String),
    /// `.a.b`: fields of dot.
    Field(Vec<String>),
    /// `$x.a.b`: a variable and fields of it.
    Var(String, Vec<String>),
    /// A function name.
    Func(String),
    /// `(pipeline)`.
    Pipe(Box<Pipe>),
    /// `(pipeline).a.b`.
    Chain(Box<Arg>, Vec<String>),
}

/// Parses a template.
///
/// # Errors
/// With Go's kind of message when the template does not lex or parse.
pub(crate) fn parse(text: &str) -> Result<Tree, String> {
    let tokens = lex(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        vars: vec!["$".to_string()],
        range_depth: 0,
        nesting: 0,
        defines: HashMap::new(),
    };
    let (root, end) = parser.list(true)?;
    match end {
        End::Eof => {}
        End::Close => return Err("unexpected {{end}}".into()),
        End::Else(_) => return Err("unexpected {{else}}".into()),
    }
    Ok(Tree {
        root,
        defines: parser.defines,
    })
}

/// What ended a list of nodes.
enum End {
    /// The end of input.
    Eof,
    /// `{{end}}`.
    Close,
    /// `{{else}}`, possibly followed by `if`/`with` (the keyword).
    Else(Option<BranchKind>),
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Variables in scope, innermost last.
    vars: Vec<String>,
    range_depth: usize,
    nesting: usize,
    defines: HashMap<String, Vec<Node>>,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn peek_token(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).map(|t| t.tok.clone());
        self.pos += 1;
        t
    }

    fn expect_close(&mut self, context: &str) -> Result<(), String> {
        match self.next() {
            Some(Tok::Close) => Ok(()),
            Some(t) => Err(format!("unexpected {} in {context}", describe(&t))),
            None => Err(format!("unexpected EOF in {context}")),
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(format!("template nests deeper than {MAX_NESTING} levels"));
        }
        Ok(())
    }

    /// Nodes up to `{{end}}`, `{{else}}` or the end of input.
    fn list(&mut self, top: bool) -> Result<(Vec<Node>, End), String> {
        let mut nodes = Vec::new();
        while let Some(tok) = self.next() {
            match tok {
                Tok::Text(t) => nodes.push(Node::Text(t)),
                Tok::Open => match self.peek().cloned() {
                    Some(Tok::Keyword(k)) => {
                        self.pos += 1;
                        match k {
                            "end" => {
                                self.expect_close("end")?;
                                return Ok((nodes, End::Close));
                            }
                            "else" => {
                                let kind = match self.peek() {
                                    Some(Tok::Keyword("if")) => Some(BranchKind::If),
                                    Some(Tok::Keyword("with")) => Some(BranchKind::With),
                                    _ => None,
                                };
                                if kind.is_some() {
                                    self.pos += 1;
                                } else {
                                    self.expect_close("else")?;
                                }
                                return Ok((nodes, End::Else(kind)));
                            }
                            "if" => nodes.push(self.branch(BranchKind::If)?),
                            "with" => nodes.push(self.branch(BranchKind::With)?),
                            "range" => nodes.push(self.branch(BranchKind::Range)?),
                            "break" | "continue" => {
                                if self.range_depth == 0 {
                                    return Err(format!("{{{{{k}}}}} outside {{{{range}}}}"));
                                }
                                self.expect_close(k)?;
                                nodes.push(if k == "break" {
                                    Node::Break
                                } else {
                                    Node::Continue
                                });
                            }
                            "template" => nodes.push(self.template_call("template")?),
                            "define" => {
                                if !top {
                                    return Err(
                                        "unexpected {{define}} inside a control structure".into()
                                    );
                                }
                                self.define()?;
                            }
                            "block" => {
                                let call = self.template_call("block")?;
                                let Node::Call { name, .. } = &call else {
                                    return Err("internal: block without a name".into());
                                };
                                let name = name.clone();
                                self.enter()?;
                                let (body, end) = self.list(false)?;
                                self.nesting -= 1;
                                if !matches!(end, End::Close) {
                                    return Err("expected {{end}} after {{block}}".into());
                                }
                                self.defines.insert(name, body);
                                nodes.push(call);
                            }
                            other => return Err(format!("unexpected keyword {other}")),
                        }
                    }
                    _ => {
                        let pipe = self.pipeline("command", false)?;
                        self.expect_close("command")?;
                        nodes.push(Node::Action(pipe));
                    }
                },
                t => return Err(format!("unexpected {}", describe(&t))),
            }
        }
        Ok((nodes, End::Eof))
    }

    fn branch(&mut self, kind: BranchKind) -> Result<Node, String> {
        self.enter()?;
        let scope = self.vars.len();
        let context = match kind {
            BranchKind::If => "if",
            BranchKind::With => "with",
            BranchKind::Range => "range",
        };
        let pipe = self.pipeline(context, kind == BranchKind::Range)?;
        self.expect_close(context)?;
        if kind == BranchKind::Range {
            self.range_depth += 1;
        }
        let (body, end) = self.list(false)?;
        if kind == BranchKind::Range {
            self.range_depth -= 1;
        }
        let otherwise = match end {
            End::Eof => {
                return Err(format!(
                    "unexpected EOF: {{{{{context}}}}} without {{{{end}}}}"
                ));
            }
            End::Close => Vec::new(),
            End::Else(None) => {
                let (otherwise, end) = self.list(false)?;
                if !matches!(end, End::Close) {
                    return Err(format!(
                        "expected {{{{end}}}} after {{{{else}}}} of {{{{{context}}}}}"
                    ));
                }
                otherwise
            }
            // `{{else if x}}...{{end}}` is `{{else}}{{if x}}...{{end}}{{end}}`
            // with one shared end.
            End::Else(Some(inner)) => {
                if kind == BranchKind::Range {
                    return Err("{{else if}} or {{else with}} cannot follow {{range}}".into());
                }
                vec![self.branch(inner)?]
            }
        };
        self.vars.truncate(scope);
        self.nesting -= 1;
        Ok(Node::Branch {
            kind,
            pipe,
            body,
            otherwise,
        })
    }

    fn template_call(&mut self, context: &str) -> Result<Node, String> {
        let name = match self.next() {
            Some(Tok::Str(s)) => s,
            other => {
                return Err(format!(
                    "unexpected {} in {context} clause: want a quoted name",
                    other.as_ref().map_or("EOF".into(), describe)
                ));
            }
        };
        let pipe = if matches!(self.peek(), Some(Tok::Close)) {
            None
        } else {
            Some(self.pipeline(context, false)?)
        };
        self.expect_close(context)?;
        Ok(Node::Call { name, pipe })
    }

    fn define(&mut self) -> Result<(), String> {
        let name = match self.next() {
            Some(Tok::Str(s)) => s,
            _ => return Err("define clause needs a quoted name".into()),
        };
        self.expect_close("define clause")?;
        // A defined template sees only its own `$`.
        let outer = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        self.enter()?;
        let (body, end) = self.list(false)?;
        self.nesting -= 1;
        self.vars = outer;
        if !matches!(end, End::Close) {
            return Err(format!(
                "expected {{{{end}}}} after {{{{define {name:?}}}}}"
            ));
        }
        self.defines.insert(name, body);
        Ok(())
    }

    /// A pipeline up to `}}` or `)` (not consumed).
    fn pipeline(&mut self, context: &str, ranging: bool) -> Result<Pipe, String> {
        let mut pipe = Pipe::default();
        // Declarations: `$x :=`, `$x =`, and in range `$i, $v :=`.
        if let Some(Tok::Var(first)) = self.peek().cloned() {
            let save = self.pos;
            self.pos += 1;
            match self.peek() {
                Some(Tok::Declare) | Some(Tok::Assign) => {
                    pipe.assign = matches!(self.peek(), Some(Tok::Assign));
                    self.pos += 1;
                    pipe.decl.push(first);
                }
                Some(Tok::Comma) if ranging => {
                    self.pos += 1;
                    match (self.next(), self.next()) {
                        (Some(Tok::Var(second)), Some(op @ (Tok::Declare | Tok::Assign))) => {
                            pipe.assign = op == Tok::Assign;
                            pipe.decl.push(first);
                            pipe.decl.push(second);
                        }
                        _ => return Err(format!("malformed variables in {context}")),
                    }
                }
                _ => self.pos = save,
            }
        }
        for name in &pipe.decl {
            if pipe.assign && !self.vars.contains(name) {
                return Err(format!("undefined variable {name:?}"));
            }
        }
        loop {
            let cmd = self.command(context)?;
            if !pipe.cmds.is_empty()
                && let Some(first) = cmd.args.first()
                && matches!(
                    first,
                    Arg::Bool(_) | Arg::Dot | Arg::Nil | Arg::Number(_) | Arg::Str(_)
                )
            {
                return Err(format!(
                    "non executable command in pipeline stage {}",
                    pipe.cmds.len() + 1
                ));
            }
            pipe.cmds.push(cmd);
            match self.peek() {
                Some(Tok::Pipe) => self.pos += 1,
                _ => break,
            }
        }
        // Variables come into scope after their pipeline.
        if !pipe.assign {
            self.vars.extend(pipe.decl.iter().cloned());
        }
        Ok(pipe)
    }

    fn command(&mut self, context: &str) -> Result<Cmd, String> {
        let mut args = Vec::new();
        loop {
            match self.peek_token() {
                None => return Err(format!("unexpected EOF in {context}")),
                Some(t) if matches!(t.tok, Tok::Close | Tok::RParen | Tok::Pipe) => break,
                Some(t) if !args.is_empty() && !t.space_before => {
                    return Err(format!("unexpected {} in operand", describe(&t.tok)));
                }
                Some(_) => args.push(self.operand(context)?),
            }
        }
        if args.is_empty() {
            return Err(format!("missing value for {context}"));
        }
        Ok(Cmd { args })
    }

    fn operand(&mut self, context: &str) -> Result<Arg, String> {
        let term = match self.next() {
            Some(Tok::Dot) => Arg::Dot,
            Some(Tok::Nil) => Arg::Nil,
            Some(Tok::Bool(b)) => Arg::Bool(b),
            Some(Tok::Str(s)) => Arg::Str(s),
            Some(Tok::Char(c)) => Arg::Number(Number::Int(i64::from(u32::from(c)))),
            Some(Tok::Number(n)) => Arg::Number(parse_number(&n)?),
            Some(Tok::Field(f)) => Arg::Field(vec![f]),
            Some(Tok::Var(v)) => {
                if !self.vars.contains(&v) {
                    return Err(format!("undefined variable {v:?}"));
                }
                Arg::Var(v, Vec::new())
            }
            Some(Tok::Ident(name)) => {
                if !funcs::exists(&name) {
                    return Err(format!("function {name:?} not defined"));
                }
                Arg::Func(name)
            }
            Some(Tok::LParen) => {
                self.enter()?;
                let pipe = self.pipeline("parenthesized pipeline", false)?;
                self.nesting -= 1;
                match self.next() {
                    Some(Tok::RParen) => Arg::Pipe(Box::new(pipe)),
                    _ => return Err("unclosed left paren".into()),
                }
            }
            Some(t) => return Err(format!("unexpected {} in {context}", describe(&t))),
            None => return Err(format!("unexpected EOF in {context}")),
        };
        // Fields right after a term, without space, chain onto it.
        let mut chain = Vec::new();
        while let Some(Token {
            tok: Tok::Field(f),
            space_before: false,
        }) = self.peek_token()
        {
            chain.push(f.clone());
            self.pos += 1;
        }
        if chain.is_empty() {
            return Ok(term);
        }
        Ok(match term {
            Arg::Field(mut fields) => {
                fields.extend(chain);
                Arg::Field(fields)
            }
            Arg::Var(v, mut fields) => {
                fields.extend(chain);
                Arg::Var(v, fields)
            }
            Arg::Pipe(_) | Arg::Func(_) => Arg::Chain(Box::new(term), chain),
            _ => return Err(format!("unexpected . after term {}", chain.join("."))),
        })
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Text(_) => "text".into(),
        Tok::Open => "\"{{\"".into(),
        Tok::Close => "\"}}\"".into(),
        Tok::Field(f) => format!("<.{f}>"),
        Tok::Var(v) => format!("<{v}>"),
        Tok::Dot => "<.>".into(),
        Tok::Ident(i) => format!("<{i}>"),
        Tok::Keyword(k) => format!("<{k}>"),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Number(n) => format!("<{n}>"),
        Tok::Char(c) => format!("{c:?}"),
        Tok::Bool(b) => format!("<{b}>"),
        Tok::Nil => "<nil>".into(),
        Tok::Pipe => "\"|\"".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
    }
}
