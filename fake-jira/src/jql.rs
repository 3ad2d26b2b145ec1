//! A small, honest JQL: the part of the language cache clients send, parsed
//! as Jira parses it and refused with Jira's messages when Jira would refuse
//! it, so that a client which forgets to quote a reserved word (`FOR`), asks
//! for a deleted project or sends an unbounded query to Cloud finds out here.
//!
//! Supported: `project`, `key` (`issuekey`, `id`), `updated` and `created`
//! clauses; `=`, `!=`, `IN`, `NOT IN` on projects and keys; `>`, `>=`, `<`,
//! `<=` on dates, with relative (`-30d`, `-4h`, `-15m`, `-2w`, `"-1w 2d"`)
//! or absolute (`"2026-11-01 06:00"`, `2026/11/01`, read in UTC) values and
//! `now()`; `AND`, `OR`, `NOT`, parentheses; `ORDER BY` `updated`,
//! `created`, `key`, `id` or `project`, `ASC` or `DESC`. Without `ORDER BY`
//! results come by key, descending; ties in any order are broken the same
//! way, so offset paging is stable. Any other field is refused as Jira
//! refuses a field it does not know.

use std::cmp::Ordering;
use std::collections::HashSet;

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::Value;

use crate::site::{IndexedIssue, IssueIndex, Site, str_field};

/// A JQL error, with Jira's wording: served as a 400's `errorMessages`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JqlError(pub(crate) String);

/// A parsed query: a filter (absent: unbounded) and a sort order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    filter: Option<Expr>,
    order: Vec<(Located, bool)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Clause {
        field: Located,
        op: Op,
        operands: Vec<Operand>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Like,
    NotLike,
    In,
    NotIn,
    Is,
    IsNot,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Like => "~",
            Op::NotLike => "!~",
            Op::In => "in",
            Op::NotIn => "not in",
            Op::Is => "is",
            Op::IsNot => "is not",
        }
    }
}

/// Text and where it starts (1-based character), for error messages.
#[derive(Debug, Clone, PartialEq)]
struct Located {
    text: String,
    pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Value(Located),
    Function(Located),
}

impl Query {
    /// Whether the query restricts anything: Cloud refuses queries without a
    /// single clause (`ORDER BY key` alone) as unbounded.
    pub(crate) fn is_bounded(&self) -> bool {
        self.filter.is_some()
    }
}

pub(crate) fn parse(jql: &str) -> Result<Query, JqlError> {
    let tokens = lex(jql)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        len: jql.chars().count(),
    };
    parser.query()
}

// ---------------------------------------------------------------- lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Sym(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    tok: Tok,
    pos: usize,
}

fn syntax(detail: impl std::fmt::Display, pos: usize) -> JqlError {
    JqlError(format!(
        "Error in the JQL Query: {detail} (line 1, character {pos})"
    ))
}

fn lex(jql: &str) -> Result<Vec<Token>, JqlError> {
    let chars: Vec<char> = jql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        let sym = match (c, next) {
            ('!', Some('=')) => Some("!="),
            ('!', Some('~')) => Some("!~"),
            ('>', Some('=')) => Some(">="),
            ('<', Some('=')) => Some("<="),
            ('&', Some('&')) => Some("&&"),
            ('|', Some('|')) => Some("||"),
            ('=', _) => Some("="),
            ('>', _) => Some(">"),
            ('<', _) => Some("<"),
            ('~', _) => Some("~"),
            ('!', _) => Some("!"),
            ('(', _) => Some("("),
            (')', _) => Some(")"),
            (',', _) => Some(","),
            ('&', _) => Some("&"),
            ('|', _) => Some("|"),
            _ => None,
        };
        if let Some(sym) = sym {
            if sym == "&" || sym == "|" {
                return Err(syntax(format!("Unexpected character '{sym}'."), pos));
            }
            tokens.push(Token {
                tok: Tok::Sym(sym),
                pos,
            });
            i += sym.len();
            continue;
        }
        if c == '"' || c == '\'' {
            let mut text = String::new();
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None => {
                        return Err(syntax(
                            format!("The quoted string '{text}' has not been completed."),
                            pos,
                        ));
                    }
                    Some(&q) if q == c => break,
                    Some('\\') => {
                        let escaped = chars.get(j + 1).copied().unwrap_or('\\');
                        text.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                        j += 2;
                    }
                    Some(&other) => {
                        text.push(other);
                        j += 1;
                    }
                }
            }
            tokens.push(Token {
                tok: Tok::Str(text),
                pos,
            });
            i = j + 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && !"\"'(),=!<>~&|".contains(chars[i]) {
            i += 1;
        }
        tokens.push(Token {
            tok: Tok::Word(chars[start..i].iter().collect()),
            pos,
        });
    }
    Ok(tokens)
}

// --------------------------------------------------------------- parsing

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// Length of the query in characters, for "end of query" positions.
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Word(w), .. }) if w.eq_ignore_ascii_case(keyword))
    }

    fn peek_sym(&self, sym: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Sym(s), .. }) if *s == sym)
    }

    fn end_pos(&self) -> usize {
        self.len + 1
    }

    /// "'x'" for the next token, or "end of query".
    fn describe_next(&self) -> (String, usize) {
        match self.peek() {
            None => ("end of query".to_owned(), self.end_pos()),
            Some(t) => {
                let text = match &t.tok {
                    Tok::Word(w) => w.clone(),
                    Tok::Str(s) => s.clone(),
                    Tok::Sym(s) => (*s).to_owned(),
                };
                (format!("'{text}'"), t.pos)
            }
        }
    }

    fn query(&mut self) -> Result<Query, JqlError> {
        let filter = if self.peek().is_none() || self.peek_keyword("order") {
            None
        } else {
            Some(self.or()?)
        };
        let mut order = Vec::new();
        if self.peek_keyword("order") {
            self.at += 1;
            if !self.peek_keyword("by") {
                let (got, pos) = self.describe_next();
                return Err(syntax(format!("Expecting 'BY' but got {got}."), pos));
            }
            self.at += 1;
            loop {
                let field = match self.peek() {
                    Some(Token {
                        tok: Tok::Word(w) | Tok::Str(w),
                        pos,
                    }) => Located {
                        text: w.clone(),
                        pos: *pos,
                    },
                    _ => {
                        let (got, pos) = self.describe_next();
                        return Err(syntax(
                            format!("Expecting a field name but got {got}."),
                            pos,
                        ));
                    }
                };
                self.at += 1;
                let descending = if self.peek_keyword("desc") {
                    self.at += 1;
                    true
                } else {
                    if self.peek_keyword("asc") {
                        self.at += 1;
                    }
                    false
                };
                order.push((field, descending));
                if self.peek_sym(",") {
                    self.at += 1;
                } else {
                    break;
                }
            }
        }
        if self.peek().is_some() {
            let (got, pos) = self.describe_next();
            return Err(syntax(
                format!("Expecting either 'OR' or 'AND' but got {got}."),
                pos,
            ));
        }
        Ok(Query { filter, order })
    }

    fn or(&mut self) -> Result<Expr, JqlError> {
        let mut terms = vec![self.and()?];
        while self.peek_keyword("or") || self.peek_sym("||") {
            self.at += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Expr, JqlError> {
        let mut terms = vec![self.unary()?];
        while self.peek_keyword("and") || self.peek_sym("&&") {
            self.at += 1;
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn unary(&mut self) -> Result<Expr, JqlError> {
        if self.peek_keyword("not") || self.peek_sym("!") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek_sym("(") {
            self.at += 1;
            let inner = self.or()?;
            if !self.peek_sym(")") {
                let (got, pos) = self.describe_next();
                return Err(syntax(format!("Expecting ')' but got {got}."), pos));
            }
            self.at += 1;
            return Ok(inner);
        }
        self.clause()
    }

    fn clause(&mut self) -> Result<Expr, JqlError> {
        let field = match self.peek() {
            Some(Token {
                tok: Tok::Word(w), ..
            }) if is_reserved(w) => {
                let (got, pos) = self.describe_next();
                return Err(syntax(
                    format!("Expecting a field name but got {got}."),
                    pos,
                ));
            }
            Some(Token {
                tok: Tok::Word(w) | Tok::Str(w),
                pos,
            }) => Located {
                text: w.clone(),
                pos: *pos,
            },
            _ => {
                let (got, pos) = self.describe_next();
                return Err(syntax(
                    format!("Expecting a field name but got {got}."),
                    pos,
                ));
            }
        };
        self.at += 1;
        let op = self.operator()?;
        let operands = match op {
            Op::In | Op::NotIn => self.list()?,
            Op::Is | Op::IsNot => {
                if self.peek_keyword("empty") || self.peek_keyword("null") {
                    self.at += 1;
                    Vec::new()
                } else {
                    let (got, pos) = self.describe_next();
                    return Err(syntax(
                        format!("Expecting 'EMPTY' or 'NULL' but got {got}."),
                        pos,
                    ));
                }
            }
            _ => vec![self.operand()?],
        };
        Ok(Expr::Clause {
            field,
            op,
            operands,
        })
    }

    fn operator(&mut self) -> Result<Op, JqlError> {
        let op = match self.peek().map(|t| &t.tok) {
            Some(Tok::Sym("=")) => Some(Op::Eq),
            Some(Tok::Sym("!=")) => Some(Op::Ne),
            Some(Tok::Sym(">")) => Some(Op::Gt),
            Some(Tok::Sym(">=")) => Some(Op::Ge),
            Some(Tok::Sym("<")) => Some(Op::Lt),
            Some(Tok::Sym("<=")) => Some(Op::Le),
            Some(Tok::Sym("~")) => Some(Op::Like),
            Some(Tok::Sym("!~")) => Some(Op::NotLike),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("in") => Some(Op::In),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("not") => {
                self.at += 1;
                if !self.peek_keyword("in") {
                    let (got, pos) = self.describe_next();
                    return Err(syntax(format!("Expecting 'IN' but got {got}."), pos));
                }
                Some(Op::NotIn)
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("is") => {
                if matches!(self.tokens.get(self.at + 1), Some(Token { tok: Tok::Word(n), .. }) if n.eq_ignore_ascii_case("not"))
                {
                    self.at += 1;
                    Some(Op::IsNot)
                } else {
                    Some(Op::Is)
                }
            }
            _ => None,
        };
        match op {
            Some(op) => {
                self.at += 1;
                Ok(op)
            }
            None => {
                let (got, pos) = self.describe_next();
                Err(syntax(
                    format!(
                        "Expecting operator but got {got}. The valid operators are '=', '!=', \
                         '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'."
                    ),
                    pos,
                ))
            }
        }
    }

    fn list(&mut self) -> Result<Vec<Operand>, JqlError> {
        if !self.peek_sym("(") {
            let (got, pos) = self.describe_next();
            return Err(syntax(format!("Expecting '(' but got {got}."), pos));
        }
        self.at += 1;
        let mut operands = vec![self.operand()?];
        while self.peek_sym(",") {
            self.at += 1;
            operands.push(self.operand()?);
        }
        if !self.peek_sym(")") {
            let (got, pos) = self.describe_next();
            return Err(syntax(format!("Expecting ')' but got {got}."), pos));
        }
        self.at += 1;
        Ok(operands)
    }

    fn operand(&mut self) -> Result<Operand, JqlError> {
        match self.peek().cloned() {
            Some(Token {
                tok: Tok::Str(s),
                pos,
            }) => {
                self.at += 1;
                Ok(Operand::Value(Located { text: s, pos }))
            }
            Some(Token {
                tok: Tok::Word(w),
                pos,
            }) => {
                if matches!(
                    self.tokens.get(self.at + 1),
                    Some(Token {
                        tok: Tok::Sym("("),
                        ..
                    })
                ) {
                    self.at += 2;
                    let mut depth = 1;
                    while depth > 0 {
                        match self.peek().map(|t| &t.tok) {
                            None => {
                                return Err(syntax(
                                    "Expecting ')' but got end of query.",
                                    self.end_pos(),
                                ));
                            }
                            Some(Tok::Sym("(")) => depth += 1,
                            Some(Tok::Sym(")")) => depth -= 1,
                            _ => {}
                        }
                        self.at += 1;
                    }
                    return Ok(Operand::Function(Located { text: w, pos }));
                }
                if is_reserved(&w) {
                    return Err(syntax(
                        format!(
                            "'{w}' is a reserved JQL word. You must surround it in quotation \
                             marks to use it in a query."
                        ),
                        pos,
                    ));
                }
                self.at += 1;
                Ok(Operand::Value(Located { text: w, pos }))
            }
            _ => {
                let (got, pos) = self.describe_next();
                Err(syntax(
                    format!("Expecting either a value, list or function but got {got}."),
                    pos,
                ))
            }
        }
    }
}

/// JQL's reserved words (Atlassian's list): unquoted, they are refused as values.
fn is_reserved(word: &str) -> bool {
    #[rustfmt::skip]
    const RESERVED: &[&str] = &[
        "a", "abort", "access", "add", "after", "alias", "all", "alter", "and", "any", "are",
        "as", "asc", "audit", "avg", "before", "begin", "between", "boolean", "break", "by",
        "byte", "catch", "cf", "char", "character", "check", "checkpoint", "collate",
        "collation", "column", "commit", "connect", "continue", "count", "create", "current",
        "date", "decimal", "declare", "decrement", "default", "defaults", "define", "delete",
        "delimiter", "desc", "difference", "distinct", "divide", "do", "double", "drop", "else",
        "empty", "encoding", "end", "equals", "escape", "exclusive", "exec", "execute",
        "exists", "explain", "false", "fetch", "file", "field", "first", "float", "for", "from",
        "function", "go", "goto", "grant", "greater", "group", "having", "identified", "if",
        "immediate", "in", "increment", "index", "initial", "inner", "inout", "input", "insert",
        "int", "integer", "intersect", "intersection", "into", "is", "isempty", "isnull",
        "join", "last", "left", "less", "like", "limit", "lock", "long", "max", "min", "minus",
        "mode", "modify", "modulo", "more", "multiply", "next", "noaudit", "not", "notin",
        "nowait", "null", "number", "object", "of", "on", "option", "or", "order", "outer",
        "output", "power", "previous", "prior", "privileges", "public", "raise", "raw",
        "remainder", "rename", "resume", "return", "returns", "revoke", "right", "row", "rowid",
        "rownum", "rows", "select", "session", "set", "share", "size", "sqrt", "start",
        "strict", "string", "subtract", "sum", "synonym", "table", "then", "to", "trans",
        "transaction", "trigger", "true", "uid", "union", "unique", "update", "user",
        "validate", "values", "view", "when", "whenever", "where", "while", "with",
    ];
    RESERVED.contains(&word.to_ascii_lowercase().as_str())
}

// -------------------------------------------------------------- planning

/// A query resolved against a site: projects and keys looked up, dates
/// turned into instants. Built per request, as Jira validates per request.
#[derive(Debug)]
pub(crate) struct Plan {
    filter: Option<Filter>,
    order: Vec<(SortField, bool)>,
}

#[derive(Debug)]
enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    /// Upper-case project keys.
    Project(HashSet<String>),
    /// Issue positions.
    Key(HashSet<usize>),
    Time {
        field: TimeField,
        op: Op,
        millis: i64,
    },
}

#[derive(Debug, Clone, Copy)]
enum TimeField {
    Updated,
    Created,
}

#[derive(Debug, Clone, Copy)]
enum SortField {
    Updated,
    Created,
    Key,
    Id,
    Project,
}

/// Resolves a query against the site at `now_millis`.
pub(crate) fn plan(
    query: &Query,
    site: &Site,
    index: &IssueIndex,
    now_millis: i64,
) -> Result<Plan, JqlError> {
    plan_checked(query, site, index, now_millis, true)
}

/// [`plan`], with Data Center's `validateQuery`: when false, a project or
/// issue key that does not exist matches nothing instead of failing the
/// query, as Jira turns those errors into warnings.
pub(crate) fn plan_checked(
    query: &Query,
    site: &Site,
    index: &IssueIndex,
    now_millis: i64,
    validate: bool,
) -> Result<Plan, JqlError> {
    let lookup = Lookup {
        site,
        index,
        now: now_millis,
        validate,
    };
    let filter = match &query.filter {
        Some(expr) => Some(resolve(expr, &lookup)?),
        None => None,
    };
    let order = query
        .order
        .iter()
        .map(|(field, descending)| {
            let f = match field.text.to_ascii_lowercase().as_str() {
                "updated" | "updateddate" => SortField::Updated,
                "created" | "createddate" => SortField::Created,
                "key" | "issuekey" => SortField::Key,
                "id" => SortField::Id,
                "project" => SortField::Project,
                _ => {
                    return Err(JqlError(format!(
                        "Not able to sort using field '{}'.",
                        field.text
                    )));
                }
            };
            Ok((f, *descending))
        })
        .collect::<Result<_, _>>()?;
    Ok(Plan { filter, order })
}

/// What resolving a query needs.
struct Lookup<'a> {
    site: &'a Site,
    index: &'a IssueIndex,
    now: i64,
    validate: bool,
}

fn resolve(expr: &Expr, lookup: &Lookup<'_>) -> Result<Filter, JqlError> {
    let all = |items: &[Expr]| -> Result<Vec<Filter>, JqlError> {
        items.iter().map(|e| resolve(e, lookup)).collect()
    };
    Ok(match expr {
        Expr::And(items) => Filter::And(all(items)?),
        Expr::Or(items) => Filter::Or(all(items)?),
        Expr::Not(inner) => Filter::Not(Box::new(resolve(inner, lookup)?)),
        Expr::Clause {
            field,
            op,
            operands,
        } => clause(field, *op, operands, lookup)?,
    })
}

fn clause(
    field: &Located,
    op: Op,
    operands: &[Operand],
    lookup: &Lookup<'_>,
) -> Result<Filter, JqlError> {
    let (site, index, now) = (lookup.site, lookup.index, lookup.now);
    let name = field.text.to_ascii_lowercase();
    let unsupported = |what: &str| {
        JqlError(format!(
            "The operator '{}' is not supported by the '{}' field{what}.",
            op.text(),
            field.text
        ))
    };
    fn values(operands: &[Operand]) -> Result<Vec<&Located>, JqlError> {
        operands
            .iter()
            .map(|o| match o {
                Operand::Value(v) => Ok(v),
                Operand::Function(f) => Err(JqlError(format!(
                    "Unable to find JQL function '{}()'.",
                    f.text
                ))),
            })
            .collect()
    }
    let negate = |f: Filter| match op {
        Op::Ne | Op::NotIn => Filter::Not(Box::new(f)),
        _ => f,
    };
    match name.as_str() {
        "project" => {
            if !matches!(op, Op::Eq | Op::Ne | Op::In | Op::NotIn) {
                return Err(unsupported(""));
            }
            let mut keys = HashSet::new();
            for v in values(operands)? {
                if !lookup.validate && find_project(site, index, &v.text).is_none() {
                    continue;
                }
                let project = find_project(site, index, &v.text).ok_or_else(|| {
                    JqlError(format!(
                        "The value '{}' does not exist for the field '{}'.",
                        v.text, field.text
                    ))
                })?;
                keys.insert(
                    str_field(project, "key")
                        .unwrap_or_default()
                        .to_ascii_uppercase(),
                );
            }
            Ok(negate(Filter::Project(keys)))
        }
        "key" | "issuekey" | "issue" | "id" => {
            if !matches!(op, Op::Eq | Op::Ne | Op::In | Op::NotIn) {
                return Err(unsupported(" in this fake Jira"));
            }
            let mut positions = HashSet::new();
            for v in values(operands)? {
                if !lookup.validate && index.find(&v.text).is_none() {
                    continue;
                }
                let pos = index.find(&v.text).ok_or_else(|| {
                    JqlError(format!(
                        "An issue with key '{}' does not exist for field '{}'.",
                        v.text, field.text
                    ))
                })?;
                positions.insert(pos);
            }
            Ok(negate(Filter::Key(positions)))
        }
        "updated" | "updateddate" | "created" | "createddate" => {
            if !matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le) {
                return Err(unsupported(" in this fake Jira"));
            }
            let time_field = if name.starts_with("updated") {
                TimeField::Updated
            } else {
                TimeField::Created
            };
            let millis = match operands {
                [Operand::Function(f)] if f.text.eq_ignore_ascii_case("now") => now,
                [Operand::Function(f)] => {
                    return Err(JqlError(format!(
                        "Unable to find JQL function '{}()'.",
                        f.text
                    )));
                }
                [Operand::Value(v)] => date_value(&v.text, now).ok_or_else(|| {
                    JqlError(format!(
                        "Date value '{}' for field '{}' is invalid. Valid formats include: \
                         'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', \
                         or a period format e.g. '-5d', '4w 2d'.",
                        v.text, field.text
                    ))
                })?,
                _ => return Err(unsupported("")),
            };
            Ok(Filter::Time {
                field: time_field,
                op,
                millis,
            })
        }
        _ => Err(JqlError(format!(
            "Field '{}' does not exist or you do not have permission to view it.",
            field.text
        ))),
    }
}

/// A project by key (any case), id or name (any case).
fn find_project<'a>(site: &'a Site, index: &IssueIndex, value: &str) -> Option<&'a Value> {
    index.project(site, value).or_else(|| {
        site.projects.iter().find(|p| {
            str_field(p, "name").is_some_and(|n| n.trim().eq_ignore_ascii_case(value.trim()))
        })
    })
}

/// A JQL date: relative (`-30d`, `"-1w 2d"`, `4h`) or absolute (UTC).
fn date_value(text: &str, now: i64) -> Option<i64> {
    match relative(text) {
        Some(offset) => now.checked_add(offset),
        None => absolute(text),
    }
}

/// `-30d` → -30 days in milliseconds. Units: w, d, h, m.
fn relative(text: &str) -> Option<i64> {
    let text = text.trim();
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let mut total: i64 = 0;
    let mut parts = 0;
    for part in rest.split_whitespace() {
        let unit = part.chars().last()?;
        let number: i64 = part[..part.len() - unit.len_utf8()].parse().ok()?;
        let minutes = match unit {
            'w' => 7 * 24 * 60,
            'd' => 24 * 60,
            'h' => 60,
            'm' => 1,
            _ => return None,
        };
        total = total.checked_add(number.checked_mul(minutes * 60_000)?)?;
        parts += 1;
    }
    (parts > 0).then_some(sign * total)
}

fn absolute(text: &str) -> Option<i64> {
    let text = text.trim();
    for format in ["%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    for format in ["%Y-%m-%d", "%Y/%m/%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(text, format) {
            return d
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().timestamp_millis());
        }
    }
    None
}

// ------------------------------------------------------------- executing

/// The positions of the matching issues, in the query's order.
pub(crate) fn run(plan: &Plan, index: &IssueIndex) -> Vec<usize> {
    let mut hits: Vec<usize> = match plan.filter.as_ref().and_then(|f| narrow(f, index)) {
        Some(mut candidates) => {
            candidates.sort_unstable();
            candidates.dedup();
            candidates
        }
        None => (0..index.issues.len()).collect(),
    };
    if let Some(filter) = &plan.filter {
        hits.retain(|&pos| matches(filter, pos, &index.issues[pos]));
    }
    hits.sort_by(|&a, &b| {
        let (a, b) = (&index.issues[a], &index.issues[b]);
        plan.order
            .iter()
            .map(|&(field, descending)| {
                let ord = compare(field, a, b);
                if descending { ord.reverse() } else { ord }
            })
            .find(|o| o.is_ne())
            .unwrap_or_else(|| compare(SortField::Key, b, a))
    });
    hits
}

/// A superset of the matches, when the filter pins projects or keys.
fn narrow(filter: &Filter, index: &IssueIndex) -> Option<Vec<usize>> {
    match filter {
        Filter::Project(keys) => Some(
            keys.iter()
                .flat_map(|k| index.in_project(k))
                .copied()
                .collect(),
        ),
        Filter::Key(positions) => Some(positions.iter().copied().collect()),
        Filter::And(items) => items
            .iter()
            .filter_map(|f| narrow(f, index))
            .min_by_key(Vec::len),
        Filter::Or(items) => items
            .iter()
            .map(|f| narrow(f, index))
            .collect::<Option<Vec<_>>>()
            .map(|lists| lists.concat()),
        Filter::Not(_) | Filter::Time { .. } => None,
    }
}

fn matches(filter: &Filter, pos: usize, issue: &IndexedIssue) -> bool {
    match filter {
        Filter::And(items) => items.iter().all(|f| matches(f, pos, issue)),
        Filter::Or(items) => items.iter().any(|f| matches(f, pos, issue)),
        Filter::Not(inner) => !matches(inner, pos, issue),
        Filter::Project(keys) => keys.contains(&issue.project),
        Filter::Key(positions) => positions.contains(&pos),
        Filter::Time { field, op, millis } => {
            let t = match field {
                TimeField::Updated => issue.updated,
                TimeField::Created => issue.created,
            };
            t != i64::MIN
                && match op {
                    Op::Gt => t > *millis,
                    Op::Ge => t >= *millis,
                    Op::Lt => t < *millis,
                    Op::Le => t <= *millis,
                    _ => false,
                }
        }
    }
}

fn compare(field: SortField, a: &IndexedIssue, b: &IndexedIssue) -> Ordering {
    match field {
        SortField::Updated => a.updated.cmp(&b.updated),
        SortField::Created => a.created.cmp(&b.created),
        SortField::Id => a.id.cmp(&b.id),
        SortField::Project => a.project.cmp(&b.project),
        SortField::Key => a
            .project
            .cmp(&b.project)
            .then(a.number.cmp(&b.number))
            .then_with(|| a.key.cmp(&b.key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flavor::Flavor;

    fn keys(site: &Site, jql: &str) -> Result<Vec<String>, JqlError> {
        let index = IssueIndex::build(site);
        let query = parse(jql)?;
        let plan = plan(&query, site, &index, chrono::Utc::now().timestamp_millis())?;
        Ok(run(&plan, &index)
            .into_iter()
            .map(|p| index.issues[p].key.clone())
            .collect())
    }

    fn error(site: &Site, jql: &str) -> String {
        keys(site, jql).expect_err("should be refused").0
    }

    #[test]
    fn a_quoted_or_bare_project_key_selects_its_issues() {
        let site = Site::small(Flavor::Cloud);
        let quoted = keys(&site, r#"project = "BETA""#).expect("valid");
        assert_eq!(quoted, ["BETA-4", "BETA-3", "BETA-2", "BETA-1"]);
        assert_eq!(keys(&site, "project = beta").expect("valid"), quoted);
        assert_eq!(keys(&site, "project = 'Beta'").expect("by name"), quoted);
        assert_eq!(keys(&site, "project = 10001").expect("by id"), quoted);
    }

    #[test]
    fn a_reserved_word_must_be_quoted() {
        let site = Site::small(Flavor::Cloud);
        assert_eq!(
            error(&site, "project = FOR"),
            "Error in the JQL Query: 'FOR' is a reserved JQL word. You must surround it in \
             quotation marks to use it in a query. (line 1, character 11)"
        );
        assert!(error(&site, "project in (ALPHA, FOR)").contains("reserved JQL word"));
        assert_eq!(keys(&site, r#"project = "FOR""#).expect("quoted").len(), 3);
    }

    #[test]
    fn project_in_a_list_unites_projects() {
        let site = Site::small(Flavor::Cloud);
        let got = keys(&site, r#"project in ("FOR", BETA) ORDER BY key ASC"#).expect("valid");
        assert_eq!(
            got,
            [
                "BETA-1", "BETA-2", "BETA-3", "BETA-4", "FOR-1", "FOR-2", "FOR-3"
            ]
        );
        let not = keys(&site, r#"project not in ("FOR", BETA)"#).expect("valid");
        assert!(not.iter().all(|k| k.starts_with("ALPHA-")));
        assert_eq!(not.len(), 5);
    }

    #[test]
    fn relative_dates_filter_by_updated_and_order_by_sorts() {
        let site = Site::small(Flavor::Cloud);
        let recent = keys(
            &site,
            r#"project = "ALPHA" AND updated >= -30d ORDER BY updated DESC"#,
        )
        .expect("valid");
        assert_eq!(recent, ["ALPHA-5", "ALPHA-4"]);
        let old = keys(
            &site,
            r#"project = "ALPHA" AND updated < "-30d" ORDER BY updated ASC"#,
        )
        .expect("valid");
        assert_eq!(old, ["ALPHA-1", "ALPHA-2", "ALPHA-3"]);
        for units in ["-43200m", "-720h", "-4w 2d", "-1w 23d"] {
            let got = keys(
                &site,
                &format!(r#"project = ALPHA AND updated >= "{units}""#),
            )
            .expect("valid");
            assert_eq!(got.len(), 2, "{units}");
        }
    }

    #[test]
    fn absolute_dates_are_read_to_the_minute() {
        let site = Site::small(Flavor::Cloud);
        let got =
            keys(&site, r#"project = BETA and updated >= "2000-01-01 06:00""#).expect("valid");
        assert_eq!(got.len(), 4);
        let got = keys(&site, r#"project = BETA and updated < "2000/01/01""#).expect("valid");
        assert!(got.is_empty());
        assert!(error(&site, r#"updated >= "yesterday""#).starts_with("Date value 'yesterday'"));
    }

    #[test]
    fn keys_select_issues_and_unknown_keys_are_refused() {
        let site = Site::small(Flavor::Cloud);
        let got = keys(&site, "key in (ALPHA-1, beta-2) ORDER BY key").expect("valid");
        assert_eq!(got, ["ALPHA-1", "BETA-2"]);
        assert_eq!(
            error(&site, "key = ALPHA-99"),
            "An issue with key 'ALPHA-99' does not exist for field 'key'."
        );
    }

    #[test]
    fn or_and_not_and_parentheses_combine() {
        let site = Site::small(Flavor::Cloud);
        let got = keys(
            &site,
            r#"(project = ALPHA OR project = "FOR") AND NOT updated < -30d ORDER BY key"#,
        )
        .expect("valid");
        assert_eq!(got, ["ALPHA-4", "ALPHA-5", "FOR-2", "FOR-3"]);
    }

    #[test]
    fn unknown_projects_and_fields_are_refused_as_jira_refuses_them() {
        let site = Site::small(Flavor::Cloud);
        assert_eq!(
            error(&site, "project = NOPE"),
            "The value 'NOPE' does not exist for the field 'project'."
        );
        assert_eq!(
            error(&site, "colour = red"),
            "Field 'colour' does not exist or you do not have permission to view it."
        );
        assert_eq!(
            error(&site, "project = ALPHA ORDER BY colour"),
            "Not able to sort using field 'colour'."
        );
        assert!(error(&site, "project > ALPHA").starts_with("The operator '>'"));
    }

    #[test]
    fn malformed_queries_are_syntax_errors() {
        let site = Site::small(Flavor::Cloud);
        for jql in [
            "project =",
            "project ALPHA",
            "project = \"ALPHA",
            "project = ALPHA AND",
            "project = ALPHA ORDER updated",
            "project in (ALPHA",
            "project = ALPHA garbage",
            "(project = ALPHA",
        ] {
            let message = error(&site, jql);
            assert!(
                message.starts_with("Error in the JQL Query: "),
                "{jql}: {message}"
            );
        }
    }

    #[test]
    fn only_a_query_without_any_clause_is_unbounded() {
        assert!(!parse("").expect("valid").is_bounded());
        assert!(!parse("ORDER BY key DESC").expect("valid").is_bounded());
        assert!(parse("updated >= -30d").expect("valid").is_bounded());
        assert!(parse("project = X").expect("valid").is_bounded());
    }

    #[test]
    fn without_order_by_results_come_by_key_descending() {
        let site = Site::small(Flavor::Cloud);
        let got = keys(&site, "project in (ALPHA, BETA)").expect("valid");
        assert_eq!(got.first().map(String::as_str), Some("BETA-4"));
        assert_eq!(got.last().map(String::as_str), Some("ALPHA-1"));
    }

    #[test]
    fn relative_periods_parse_with_units_and_signs() {
        assert_eq!(relative("-30d"), Some(-30 * 86_400_000));
        assert_eq!(relative("4h"), Some(4 * 3_600_000));
        assert_eq!(relative("-1w 2d"), Some(-9 * 86_400_000));
        assert_eq!(relative("-15m"), Some(-15 * 60_000));
        assert_eq!(relative("-3y"), None);
        assert_eq!(relative("d"), None);
        assert_eq!(relative(""), None);
    }
}
