//! Reading list parameters and cutting pages: one implementation of each
//! list shape's window (offset arrays, PageBeans), with the paging lies
//! applied in the one place they can bend it.

use std::ops::Range;

use serde_json::{Value, json};

use super::ApiError;
use crate::faults::PagingLies;

/// The query string's parameters, repeated ones kept in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses a raw query string; a malformed one is a 400.
    pub(crate) fn parse(raw: Option<&str>) -> Result<Params, ApiError> {
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(raw.unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("Malformed query string: {e}")))?;
        Ok(Params { pairs })
    }

    /// The first value of a parameter.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter (`keys=A&keys=B`), as given: an
    /// OpenAPI array query parameter with the default `form` style and
    /// `explode: true`, where `keys=A,B` is the one value `"A,B"`.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Every value of a parameter, repeated (`fields=a&fields=b`) or
    /// comma-separated (`fields=a,b`), trimmed, empty ones dropped: for the
    /// parameters Jira documents as comma-separated lists (`fields`,
    /// `expand`), never for exploded arrays (see [`Params::all`]).
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A non-negative integer parameter; `default` when absent; 400 when not
    /// a number.
    pub(crate) fn number(&self, name: &str, default: usize) -> Result<usize, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_number(name, v),
        }
    }

    /// A boolean parameter (`true` / `false`, any case); 400 otherwise.
    pub(crate) fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "The value '{other}' is not valid for the parameter '{name}': expected true or false."
            ))),
        }
    }
}

fn parse_number(name: &str, v: &str) -> Result<usize, ApiError> {
    v.trim().parse::<usize>().map_err(|_| number_error(name, v))
}

fn number_error(name: &str, v: &str) -> ApiError {
    ApiError::bad_request(format!(
        "The value '{v}' is not valid for the parameter '{name}': expected a non-negative integer."
    ))
}

/// A request body member read as a non-negative integer: 400 if it is not one.
pub(crate) fn body_number(body: &Value, name: &str, default: usize) -> Result<usize, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| number_error(name, &v.to_string())),
    }
}

/// A request body member read as a list of strings: an array of strings, or
/// one comma-separated string.
pub(crate) fn body_list(body: &Value, name: &str) -> Result<Vec<String>, ApiError> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    match body.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(split(s)),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str().map(split).ok_or_else(|| {
                    ApiError::bad_request(format!("'{name}' must be a list of strings."))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|lists| lists.concat()),
        Some(_) => Err(ApiError::bad_request(format!(
            "'{name}' must be a list of strings."
        ))),
    }
}

/// A request body member read as a string.
pub(crate) fn body_str<'a>(body: &'a Value, name: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad_request(format!("'{name}' must be a string."))),
    }
}

/// Parses a JSON request body; 400 with the parser's message if it is not
/// a JSON object.
pub(crate) fn json_body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "Unexpected content in the request body: {e}"
        ))),
    }
}

/// The items of a page of an offset listing of `len` items, as the lies
/// bend it: `ShortPage` cuts it, `OversizePage` doubles it, `NeverLast`
/// wraps an offset past the end back into the listing, `RepeatPage`
/// starts at 0 whatever was asked, `EmptyPage` empties it.
pub(crate) fn window(
    len: usize,
    start_at: usize,
    max_results: usize,
    lies: &PagingLies,
) -> Range<usize> {
    let start_at = if lies.repeat_page { 0 } else { start_at };
    let start = if lies.never_last && len > 0 && start_at >= len {
        start_at % len
    } else {
        start_at.min(len)
    };
    let mut take = max_results;
    if let Some(short) = lies.short_page {
        take = take.min(short);
    }
    if lies.oversize {
        take = take.saturating_mul(2).max(take.saturating_add(1));
    }
    if lies.empty_page {
        return start..start;
    }
    start..len.min(start.saturating_add(take))
}

/// A Cloud PageBean (`startAt`, `maxResults`, `total`, `isLast`, `values`)
/// over `items`. `max_results` must already be capped.
pub(crate) fn page_bean(
    items: &[Value],
    start_at: usize,
    max_results: usize,
    lies: &PagingLies,
    self_url: &str,
) -> Value {
    let range = window(items.len(), start_at, max_results, lies);
    let start_at = if lies.repeat_page { 0 } else { start_at };
    let is_last = !lies.never_last && !lies.empty_page && range.end >= items.len();
    let mut page = json!({
        "self": format!("{self_url}?startAt={start_at}&maxResults={max_results}"),
        "maxResults": max_results,
        "startAt": start_at,
        "total": lies.lying_total.unwrap_or(items.len()),
        "isLast": is_last,
        "values": &items[range.clone()],
    });
    if !is_last {
        page["nextPage"] = json!(format!(
            "{self_url}?startAt={}&maxResults={max_results}",
            range.end
        ));
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_comma_separated_parameters_both_make_lists() {
        let p = Params::parse(Some("keys=A&keys=B,C&keys=&x=1")).expect("valid");
        assert_eq!(p.list("keys"), ["A", "B", "C"]);
        assert_eq!(p.get("x"), Some("1"));
        assert!(p.list("nope").is_empty());
        assert_eq!(p.all("keys"), ["A", "B,C", ""]);
    }

    #[test]
    fn a_bad_number_is_a_bad_request_not_a_panic() {
        let p = Params::parse(Some("startAt=-1&maxResults=ten")).expect("valid");
        assert!(p.number("startAt", 0).is_err());
        assert!(p.number("maxResults", 50).is_err());
        assert_eq!(p.number("other", 7), Ok(7));
        assert!(p.flag("x", false).is_ok());
        let p = Params::parse(Some("includeInactive=maybe")).expect("valid");
        assert!(p.flag("includeInactive", false).is_err());
    }

    #[test]
    fn windows_stop_at_the_end_and_lies_bend_them() {
        let honest = PagingLies::default();
        assert_eq!(window(10, 0, 4, &honest), 0..4);
        assert_eq!(window(10, 8, 4, &honest), 8..10);
        assert_eq!(window(10, 12, 4, &honest), 10..10);
        let never_last = PagingLies {
            never_last: true,
            ..PagingLies::default()
        };
        assert_eq!(window(10, 12, 4, &never_last), 2..6);
        let short = PagingLies {
            short_page: Some(1),
            ..PagingLies::default()
        };
        assert_eq!(window(10, 0, 4, &short), 0..1);
        let oversize = PagingLies {
            oversize: true,
            ..PagingLies::default()
        };
        assert_eq!(window(10, 0, 4, &oversize), 0..8);
        let empty = PagingLies {
            empty_page: true,
            ..PagingLies::default()
        };
        assert_eq!(window(10, 4, 4, &empty), 4..4);
        let repeat = PagingLies {
            repeat_page: true,
            ..PagingLies::default()
        };
        assert_eq!(window(10, 8, 4, &repeat), 0..4);
    }

    #[test]
    fn a_page_bean_says_last_on_the_last_page_only() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let honest = PagingLies::default();
        let first = page_bean(&items, 0, 2, &honest, "u");
        assert_eq!(first["isLast"], false);
        assert_eq!(first["total"], 5);
        assert_eq!(first["nextPage"], "u?startAt=2&maxResults=2");
        let last = page_bean(&items, 4, 2, &honest, "u");
        assert_eq!(last["isLast"], true);
        assert_eq!(last["values"], json!([4]));
        assert!(last.get("nextPage").is_none());
        let lying = PagingLies {
            lying_total: Some(99),
            ..PagingLies::default()
        };
        assert_eq!(page_bean(&items, 0, 2, &lying, "u")["total"], 99);
    }

    #[test]
    fn body_members_of_the_wrong_type_are_bad_requests() {
        let body = json!({"maxResults": "ten", "fields": [1], "jql": 3, "n": 5, "f": "a, b"});
        assert!(body_number(&body, "maxResults", 50).is_err());
        assert!(body_list(&body, "fields").is_err());
        assert!(body_str(&body, "jql").is_err());
        assert_eq!(body_number(&body, "n", 0), Ok(5));
        assert_eq!(
            body_list(&body, "f"),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
        assert!(json_body(b"[1]").is_err());
        assert!(json_body(b"{").is_err());
        assert_eq!(json_body(b" "), Ok(json!({})));
    }
}
