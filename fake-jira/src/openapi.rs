//! Checks every request the fake receives against Atlassian's official
//! OpenAPI documents (`shared/jira/openapi/`), so that a client cannot pass
//! its tests by sending what only this fake understands: a path or method
//! the spec does not have, an undeclared query parameter, a value of the
//! wrong type, an array sent in the wrong style, a missing required
//! parameter, or a JSON body its operation's schema refuses.
//!
//! What is checked, per request:
//! - the path matches one of the document's path templates (literal
//!   segments win over `{parameters}`, as JAX-RS resolves them) and the
//!   template has the method;
//! - every query parameter is declared; required ones are present;
//! - each value has its declared type: `integer` (and `int32` range,
//!   `minimum`, `maximum`), `number`, `boolean` (`true`/`false`), `string`
//!   (`enum`, `maxLength`, `minLength`); arrays follow their `style` and
//!   `explode` (the default, `form` + `explode: true`, means repeated
//!   `keys=A&keys=B`, each one item, never split on commas), with
//!   `maxItems`/`minItems`/`uniqueItems`; a parameter that is not an array
//!   given twice is a violation; path parameters have their declared type;
//! - a body is JSON valid against the operation's `application/json`
//!   request body schema (`$ref`s resolved into `components`), checked with
//!   `boon` as JSON Schema draft 4 after the OpenAPI 3.0 dialect is turned
//!   into it (`nullable`, `readOnly` members in `required`); a body sent to
//!   an operation that takes none, or none where one is required, is a
//!   violation.
//!
//! Cloud serves REST v2 and v3 as one set of resources, so `/rest/api/2/X`
//! is checked as `/rest/api/3/X`. The Data Center document's server base is
//! `/rest` and its paths are `/api/2/...`. The documents are big: each is
//! read once per process and shared by every fake (see [`OpenApi::load`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde_json::{Map, Value, json};

use crate::flavor::Flavor;

/// One way a request differs from the OpenAPI document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request's path, without the query.
    pub path: String,
    /// The raw query string, still percent-encoded (empty if none).
    pub query: String,
    /// What is wrong, e.g. "query parameter `maxResult` is not declared".
    pub problem: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if !self.query.is_empty() {
            write!(f, "?{}", self.query)?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// Where the official documents are looked for unless a fake is told
/// otherwise: `$FAKE_JIRA_OPENAPI_DIR`, else `shared/jira/openapi` beside
/// the repository (as CI and every worktree has it).
pub fn default_openapi_dir() -> PathBuf {
    match std::env::var_os("FAKE_JIRA_OPENAPI_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/jira/openapi"
        )),
    }
}

/// The file of a flavor's document in the openapi directory.
pub fn openapi_file(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Cloud => "jira-cloud-platform-v3.json",
        Flavor::DataCenter => "jira-software-dc-10.3.json",
    }
}

/// A flavor's document, indexed for checking requests.
pub(crate) struct OpenApi {
    flavor: Flavor,
    templates: Vec<Template>,
    bodies: Bodies,
}

impl fmt::Debug for OpenApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenApi")
            .field("flavor", &self.flavor)
            .field("paths", &self.templates.len())
            .finish_non_exhaustive()
    }
}

struct Template {
    segments: Vec<Segment>,
    operations: HashMap<String, Operation>,
}

enum Segment {
    Literal(String),
    Param(String),
}

struct Operation {
    parameters: Vec<Parameter>,
    body: Option<RequestBody>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Location {
    Query,
    Path,
    Other,
}

struct Parameter {
    name: String,
    location: Location,
    required: bool,
    kind: Kind,
}

/// A parameter's schema, as much of it as a query string can carry.
#[derive(Debug, Clone)]
enum Kind {
    Integer {
        int32: bool,
        minimum: Option<f64>,
        maximum: Option<f64>,
    },
    Number,
    Boolean,
    String {
        allowed: Option<Vec<String>>,
        min_length: Option<usize>,
        max_length: Option<usize>,
    },
    Array {
        items: Box<Kind>,
        /// `form` + `explode: true` (repeated), else one comma-separated value.
        explode: bool,
        min_items: Option<usize>,
        max_items: Option<usize>,
        unique: bool,
    },
    /// No usable schema (the Data Center document's defects): any text.
    Any,
}

struct RequestBody {
    required: bool,
    /// The index of its JSON schema under `/requestBodies` in the
    /// validator's document, if the operation takes JSON.
    json_schema: Option<usize>,
    /// The content types it takes.
    content_types: Vec<String>,
}

/// The JSON-schema side: every operation's request body schema, compiled
/// when the document is loaded (`boon`'s compiler cannot be shared between
/// threads; its compiled schemas can).
struct Bodies {
    schemas: boon::Schemas,
    compiled: Vec<Result<boon::SchemaIndex, String>>,
}

type Cache = Mutex<HashMap<(Flavor, PathBuf), Arc<OpenApi>>>;

impl OpenApi {
    /// The flavor's document in `dir`, read once per process. `Ok(None)`
    /// when the file does not exist (the caller decides how loud to be);
    /// `Err` when it exists but cannot be used.
    pub(crate) fn load(flavor: Flavor, dir: &Path) -> Result<Option<Arc<OpenApi>>, String> {
        static CACHE: OnceLock<Cache> = OnceLock::new();
        let file = dir.join(openapi_file(flavor));
        if !file.is_file() {
            return Ok(None);
        }
        let cache = CACHE.get_or_init(Cache::default);
        let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (flavor, dir.to_path_buf());
        if let Some(spec) = cache.get(&key) {
            return Ok(Some(Arc::clone(spec)));
        }
        let text = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let doc: Value =
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let spec = Arc::new(OpenApi::from_document(flavor, doc)?);
        cache.insert(key, Arc::clone(&spec));
        Ok(Some(spec))
    }

    fn from_document(flavor: Flavor, doc: Value) -> Result<OpenApi, String> {
        let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
            return Err("the document has no `paths`".into());
        };
        let mut body_schemas = Vec::new();
        let mut templates = Vec::new();
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            let shared: Vec<&Value> = item
                .get("parameters")
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            let mut operations = HashMap::new();
            for (method, op) in item {
                if !matches!(
                    method.as_str(),
                    "get" | "put" | "post" | "delete" | "patch" | "head" | "options"
                ) {
                    continue;
                }
                let mut parameters: Vec<Parameter> = Vec::new();
                let own = op.get("parameters").and_then(Value::as_array);
                for p in shared.iter().copied().chain(own.into_iter().flatten()) {
                    let p = resolve(&doc, p);
                    let Some(name) = p.get("name").and_then(Value::as_str) else {
                        continue;
                    };
                    let location = match p.get("in").and_then(Value::as_str) {
                        Some("query") => Location::Query,
                        Some("path") => Location::Path,
                        _ => Location::Other,
                    };
                    // An operation's own parameter replaces a shared one.
                    parameters.retain(|q| !(q.name == name && q.location == location));
                    parameters.push(Parameter {
                        name: name.to_owned(),
                        location,
                        required: p.get("required").and_then(Value::as_bool) == Some(true),
                        kind: kind(&doc, p),
                    });
                }
                let body = op.get("requestBody").map(|b| {
                    let b = resolve(&doc, b);
                    let content = b.get("content").and_then(Value::as_object);
                    let json_schema = content
                        .and_then(|c| c.get("application/json").or_else(|| c.get("*/*")))
                        .and_then(|c| c.get("schema"))
                        .map(|schema| {
                            body_schemas.push(schema.clone());
                            body_schemas.len() - 1
                        });
                    RequestBody {
                        required: b.get("required").and_then(Value::as_bool) == Some(true),
                        json_schema,
                        content_types: content
                            .map(|c| c.keys().cloned().collect())
                            .unwrap_or_default(),
                    }
                });
                operations.insert(method.to_ascii_uppercase(), Operation { parameters, body });
            }
            templates.push(Template {
                segments: path
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(
                        |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                            Some(name) => Segment::Param(name.to_owned()),
                            None => Segment::Literal(s.to_owned()),
                        },
                    )
                    .collect(),
                operations,
            });
        }
        let mut schemas = doc
            .pointer("/components/schemas")
            .cloned()
            .unwrap_or_else(|| json!({}));
        to_draft4_each(&mut schemas);
        let mut bodies: Vec<Value> = body_schemas;
        for b in &mut bodies {
            to_draft4(b);
        }
        let url = format!("https://fake-jira.invalid/openapi/{flavor}.json");
        let mut compiler = boon::Compiler::new();
        compiler.set_default_draft(boon::Draft::V4);
        let count = bodies.len();
        compiler
            .add_resource(
                &url,
                json!({"components": {"schemas": schemas}, "requestBodies": bodies}),
            )
            .map_err(|e| format!("the schemas cannot be used: {e}"))?;
        let mut schemas = boon::Schemas::new();
        let compiled = (0..count)
            .map(|index| {
                compiler
                    .compile(&format!("{url}#/requestBodies/{index}"), &mut schemas)
                    .map_err(|e| e.to_string())
            })
            .collect();
        Ok(OpenApi {
            flavor,
            templates,
            bodies: Bodies { schemas, compiled },
        })
    }

    /// Everything wrong with one request; empty when it keeps to the spec.
    pub(crate) fn check(&self, method: &str, path: &str, query: &str, body: &[u8]) -> Vec<String> {
        let mut problems = Vec::new();
        let Some(doc_path) = self.document_path(path) else {
            return vec![format!(
                "the path is outside the {} document's base ({})",
                self.flavor,
                match self.flavor {
                    Flavor::Cloud => "/rest/api/3 and /rest/api/2",
                    Flavor::DataCenter => "/rest",
                }
            )];
        };
        let segments: Vec<&str> = doc_path.split('/').filter(|s| !s.is_empty()).collect();
        let mut matching: Vec<(&Template, usize)> = self
            .templates
            .iter()
            .filter(|t| t.segments.len() == segments.len())
            .filter(|t| {
                t.segments.iter().zip(&segments).all(|(t, s)| match t {
                    Segment::Literal(l) => l == s,
                    Segment::Param(_) => !s.is_empty(),
                })
            })
            .map(|t| {
                let literal = t
                    .segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count();
                (t, literal)
            })
            .collect();
        if matching.is_empty() {
            return vec![format!("no path of the spec matches {doc_path}")];
        }
        matching.sort_by_key(|(_, literal)| std::cmp::Reverse(*literal));
        let method = method.to_ascii_uppercase();
        let Some((template, operation)) = matching
            .iter()
            .find_map(|(t, _)| t.operations.get(&method).map(|op| (t, op)))
        else {
            return vec![format!("the spec has no {method} for {doc_path}")];
        };

        for (t, s) in template.segments.iter().zip(&segments) {
            if let Segment::Param(name) = t
                && let Some(p) = operation
                    .parameters
                    .iter()
                    .find(|p| p.location == Location::Path && &p.name == name)
            {
                let value = percent_decode(s);
                if let Err(e) = check_scalar(&p.kind, &value) {
                    problems.push(format!("path parameter `{name}` = {value:?}: {e}"));
                }
            }
        }

        match serde_urlencoded::from_str::<Vec<(String, String)>>(query) {
            Err(e) => problems.push(format!("the query string is malformed: {e}")),
            Ok(pairs) => check_query(operation, &pairs, &mut problems),
        }
        self.check_body(operation, body, &mut problems);
        problems
    }

    /// The request path as the document spells it, if it is under its base.
    fn document_path(&self, path: &str) -> Option<String> {
        match self.flavor {
            Flavor::Cloud => {
                let rest = path
                    .strip_prefix("/rest/api/3")
                    .or_else(|| path.strip_prefix("/rest/api/2"))?;
                (rest.is_empty() || rest.starts_with('/')).then(|| format!("/rest/api/3{rest}"))
            }
            Flavor::DataCenter => {
                let rest = path.strip_prefix("/rest")?;
                rest.starts_with('/').then(|| rest.to_owned())
            }
        }
    }

    fn check_body(&self, operation: &Operation, body: &[u8], problems: &mut Vec<String>) {
        let empty = body.iter().all(u8::is_ascii_whitespace);
        let Some(spec) = &operation.body else {
            if !empty {
                problems.push("a request body was sent, but the operation takes none".into());
            }
            return;
        };
        if empty {
            if spec.required {
                problems.push("the operation requires a request body; none was sent".into());
            }
            return;
        }
        let Some(index) = spec.json_schema else {
            problems.push(format!(
                "a JSON body was sent, but the operation takes {}",
                spec.content_types.join(" or ")
            ));
            return;
        };
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("the request body is not JSON: {e}"));
                return;
            }
        };
        match &self.bodies.compiled[index] {
            Ok(schema) => {
                if let Err(e) = self.bodies.schemas.validate(&value, *schema) {
                    let text = e.to_string();
                    let lines: Vec<&str> = text.lines().map(str::trim).collect();
                    problems.push(format!(
                        "the request body does not match the operation's schema: {}",
                        lines.join("; ")
                    ));
                }
            }
            // The document's own defect, not the client's: say so once per
            // request rather than hide it.
            Err(e) => problems.push(format!(
                "the operation's body schema cannot be compiled (a defect of the document): {e}"
            )),
        }
    }
}

fn check_query(operation: &Operation, pairs: &[(String, String)], problems: &mut Vec<String>) {
    let mut given: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in pairs {
        given.entry(k.as_str()).or_default().push(v.as_str());
    }
    for (name, values) in &given {
        let Some(p) = operation
            .parameters
            .iter()
            .find(|p| p.location == Location::Query && p.name == *name)
        else {
            problems.push(format!("query parameter `{name}` is not declared"));
            continue;
        };
        match &p.kind {
            Kind::Array {
                items,
                explode,
                min_items,
                max_items,
                unique,
            } => {
                let items_given: Vec<&str> = if *explode {
                    values.clone()
                } else {
                    if values.len() > 1 {
                        problems.push(format!(
                            "query parameter `{name}` is given {} times; it is a comma-separated \
                             list (explode: false)",
                            values.len()
                        ));
                    }
                    values.iter().flat_map(|v| v.split(',')).collect()
                };
                for item in &items_given {
                    if let Err(e) = check_scalar(items, item) {
                        problems.push(format!("query parameter `{name}` item {item:?}: {e}"));
                    }
                }
                let n = items_given.len();
                if min_items.is_some_and(|m| n < m) || max_items.is_some_and(|m| n > m) {
                    problems.push(format!(
                        "query parameter `{name}` has {n} items, outside {}..{}",
                        min_items.unwrap_or(0),
                        max_items.map_or(String::new(), |m| m.to_string())
                    ));
                }
                if *unique && items_given.iter().collect::<HashSet<_>>().len() != n {
                    problems.push(format!("query parameter `{name}` repeats an item"));
                }
            }
            kind => {
                if values.len() > 1 {
                    problems.push(format!(
                        "query parameter `{name}` is given {} times; it is not an array",
                        values.len()
                    ));
                }
                for v in values {
                    if let Err(e) = check_scalar(kind, v) {
                        problems.push(format!("query parameter `{name}` = {v:?}: {e}"));
                    }
                }
            }
        }
    }
    for p in &operation.parameters {
        if p.location == Location::Query && p.required && !given.contains_key(p.name.as_str()) {
            problems.push(format!("required query parameter `{}` is missing", p.name));
        }
    }
}

/// Checks one text value against a scalar kind.
fn check_scalar(kind: &Kind, value: &str) -> Result<(), String> {
    match kind {
        Kind::Integer {
            int32,
            minimum,
            maximum,
        } => {
            let n: i64 = value.parse().map_err(|_| "not an integer".to_owned())?;
            if *int32 && i32::try_from(n).is_err() {
                return Err("out of the int32 range".into());
            }
            if let Some(m) = minimum
                && (n as f64) < *m
            {
                return Err(format!("below the minimum {m}"));
            }
            if let Some(m) = maximum
                && (n as f64) > *m
            {
                return Err(format!("above the maximum {m}"));
            }
            Ok(())
        }
        Kind::Number => value
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(|_| ())
            .ok_or_else(|| "not a number".to_owned()),
        // Jira reads query booleans as Java's `Boolean.parseBoolean` does,
        // case-insensitively: the Python `jira` package sends `True`.
        Kind::Boolean => match value.to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => Err("not a boolean (true or false)".into()),
        },
        Kind::String {
            allowed,
            min_length,
            max_length,
        } => {
            if let Some(allowed) = allowed
                && !allowed.iter().any(|a| a == value)
            {
                return Err(format!("not one of {}", allowed.join(", ")));
            }
            let len = value.chars().count();
            if min_length.is_some_and(|m| len < m) {
                return Err("shorter than its minLength".into());
            }
            if max_length.is_some_and(|m| len > m) {
                return Err("longer than its maxLength".into());
            }
            Ok(())
        }
        // An array inside an array: the documents have none we serve.
        Kind::Array { .. } | Kind::Any => Ok(()),
    }
}

/// A parameter object's `$ref` followed, if it has one.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix('#')
            .and_then(|p| doc.pointer(p))
            .unwrap_or(v),
        None => v,
    }
}

/// A parameter's kind from its schema, style and explode.
fn kind(doc: &Value, parameter: &Value) -> Kind {
    let Some(schema) = parameter.get("schema") else {
        return Kind::Any;
    };
    let explode = parameter.get("explode").and_then(Value::as_bool).unwrap_or(
        parameter
            .get("style")
            .and_then(Value::as_str)
            .unwrap_or("form")
            == "form",
    );
    schema_kind(doc, schema, explode)
}

fn schema_kind(doc: &Value, schema: &Value, explode: bool) -> Kind {
    // The Data Center document declares some parameters (`expand` of
    // `/search`, the items of its `fields`) as `$ref: StringList`, an
    // object schema: a defect (query strings carry text), read leniently.
    if schema.get("$ref").is_some() {
        let target = resolve(doc, schema);
        if target.get("type").and_then(Value::as_str) == Some("object") || target == schema {
            return Kind::Any;
        }
        return schema_kind(doc, target, explode);
    }
    let number = |k: &str| schema.get(k).and_then(Value::as_f64);
    let size = |k: &str| schema.get(k).and_then(Value::as_u64).map(|n| n as usize);
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") => Kind::Integer {
            int32: schema.get("format").and_then(Value::as_str) == Some("int32"),
            minimum: number("minimum"),
            maximum: number("maximum"),
        },
        Some("number") => Kind::Number,
        Some("boolean") => Kind::Boolean,
        Some("string") => Kind::String {
            allowed: schema.get("enum").and_then(Value::as_array).map(|e| {
                e.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            }),
            min_length: size("minLength"),
            max_length: size("maxLength"),
        },
        Some("array") => Kind::Array {
            // Arrays without `items` (Data Center): items of any text.
            items: Box::new(
                schema
                    .get("items")
                    .map_or(Kind::Any, |i| schema_kind(doc, i, explode)),
            ),
            explode,
            min_items: size("minItems"),
            max_items: size("maxItems"),
            unique: schema.get("uniqueItems").and_then(Value::as_bool) == Some(true),
        },
        // No type (Data Center defects): any text.
        _ => Kind::Any,
    }
}

/// Turns OpenAPI 3.0 schemas into JSON Schema draft 4 for `boon`:
/// `nullable: true` becomes a `null` alternative; a `required` member that
/// is `readOnly` is dropped (it is required in answers, never sent); an
/// empty `required` goes (draft 4 wants at least one name).
fn to_draft4(v: &mut Value) {
    let Value::Object(map) = v else {
        return;
    };
    for (k, child) in map.iter_mut() {
        match k.as_str() {
            "properties" | "patternProperties" | "definitions" => to_draft4_each(child),
            "items" | "additionalProperties" | "not" | "allOf" | "anyOf" | "oneOf" => match child {
                Value::Array(schemas) => schemas.iter_mut().for_each(to_draft4),
                schema => to_draft4(schema),
            },
            // Everything else is a keyword's data (`enum`, `default`,
            // `example`, ...): leave it alone.
            _ => {}
        }
    }
    drop_read_only_required(map);
    if map.remove("nullable") == Some(Value::Bool(true)) {
        make_nullable(map);
    }
}

/// [`to_draft4`] on each schema of a map of them (`properties`,
/// `components/schemas`).
fn to_draft4_each(v: &mut Value) {
    if let Value::Object(map) = v {
        map.values_mut().for_each(to_draft4);
    }
}

fn drop_read_only_required(map: &mut Map<String, Value>) {
    let read_only: HashSet<String> = map
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .filter(|(_, p)| p.get("readOnly") == Some(&Value::Bool(true)))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    if let Some(Value::Array(required)) = map.get_mut("required") {
        required.retain(|r| r.as_str().is_none_or(|r| !read_only.contains(r)));
        if required.is_empty() {
            map.remove("required");
        }
    }
}

fn make_nullable(map: &mut Map<String, Value>) {
    if let Some(Value::String(t)) = map.get("type").cloned() {
        map.insert("type".into(), json!([t, "null"]));
        if let Some(Value::Array(allowed)) = map.get_mut("enum") {
            allowed.push(Value::Null);
        }
    } else {
        let inner = Value::Object(std::mem::take(map));
        map.insert("anyOf".into(), json!([inner, {"type": "null"}]));
    }
}

/// `%XX` sequences decoded (lossy UTF-8); the rest as is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(flavor: Flavor) -> Option<Arc<OpenApi>> {
        let spec = OpenApi::load(flavor, &default_openapi_dir()).expect("a usable document");
        if spec.is_none() {
            eprintln!(
                "skipped: the OpenAPI documents are not at {}",
                default_openapi_dir().display()
            );
        }
        spec
    }

    #[test]
    fn every_json_request_body_schema_of_both_documents_compiles() {
        for flavor in [Flavor::Cloud, Flavor::DataCenter] {
            let Some(spec) = spec(flavor) else { return };
            assert!(spec.bodies.compiled.len() > 100, "{flavor}");
            for (index, compiled) in spec.bodies.compiled.iter().enumerate() {
                if let Err(e) = compiled {
                    panic!("{flavor}: body schema {index}: {e}");
                }
            }
        }
    }

    #[test]
    fn nullable_and_read_only_become_draft_4() {
        let mut schema = json!({
            "type": "object",
            "required": ["id", "name"],
            "properties": {
                "id": {"type": "string", "readOnly": true},
                "name": {"type": "string", "nullable": true, "enum": ["a"]},
                "other": {"$ref": "#/x", "nullable": true},
            },
        });
        to_draft4(&mut schema);
        assert_eq!(schema["required"], json!(["name"]));
        assert_eq!(
            schema["properties"]["name"]["type"],
            json!(["string", "null"])
        );
        assert_eq!(schema["properties"]["name"]["enum"], json!(["a", null]));
        assert_eq!(
            schema["properties"]["other"],
            json!({"anyOf": [{"$ref": "#/x"}, {"type": "null"}]})
        );
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("A%2CB"), "A,B");
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
