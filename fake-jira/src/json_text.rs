//! Answers written as JSON text straight from the site's values.
//!
//! Building a `Value` for an answer copies every served value (a page of
//! 30 issues of 3 KB each is ~100 KB of small strings and maps), and
//! `json!` copies it once more, only for the copy to be serialized and
//! dropped. [`Object`] instead records which value goes under which name,
//! borrowing the site's values, and writes the text directly. The bulk of
//! an issue, its `fields`, is even serialized only once, when the site is
//! indexed ([`MembersText`]): pages copy that text.
//!
//! The text is exactly what serializing the equivalent `Value` gives: each
//! value is written by `serde_json` itself, and the members of an object
//! come out as a `serde_json::Map` filled the same way would hold them: a
//! name inserted twice keeps its first place and its last value, and the
//! members are sorted by name, or, with serde_json's `preserve_order`
//! feature, in insertion order (which one is asked of serde_json itself).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::{Map, Value};

/// The value under one name of an [`Object`].
pub(crate) enum Member<'a> {
    /// A value of the site, written as it is.
    Borrowed(&'a Value),
    /// A value made for this answer.
    Owned(Value),
    /// JSON text already written (an array of rendered issues, say).
    Text(Vec<u8>),
    /// The members of a site object that `keep` accepts, as an object.
    Subset {
        object: &'a Map<String, Value>,
        keep: &'a dyn Fn(&str) -> bool,
    },
    /// The same, from the object's [`MembersText`]: the members whose
    /// [`Names`] id `keep` marks `true`.
    Chosen {
        written: &'a MembersText,
        keep: &'a [bool],
    },
}

/// A JSON object being assembled: insert members in the order the
/// equivalent `Value` would have been built, then [`Object::write`] it.
/// Made for a handful of members (names are compared one by one).
#[derive(Default)]
pub(crate) struct Object<'a> {
    members: Vec<(&'a str, Member<'a>)>,
}

impl<'a> Object<'a> {
    pub(crate) fn new() -> Object<'a> {
        Object {
            members: Vec::with_capacity(8),
        }
    }

    /// Sets a member, as `Map::insert` would: a name already present keeps
    /// its place and takes the new value.
    pub(crate) fn insert(&mut self, name: &'a str, member: Member<'a>) {
        match self.members.iter_mut().find(|(n, _)| *n == name) {
            Some((_, old)) => *old = member,
            None => self.members.push((name, member)),
        }
    }

    /// Whether a member of this name was inserted.
    pub(crate) fn contains_key(&self, name: &str) -> bool {
        self.members.iter().any(|(n, _)| *n == name)
    }

    /// Appends the object's compact JSON text to `out`.
    pub(crate) fn write(mut self, out: &mut Vec<u8>) {
        if maps_are_sorted() {
            self.members.sort_by_key(|(name, _)| *name);
        }
        out.push(b'{');
        for (i, (name, member)) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_value(out, *name);
            out.push(b':');
            match member {
                Member::Borrowed(v) => write_value(out, *v),
                Member::Owned(v) => write_value(out, v),
                Member::Text(t) => out.extend_from_slice(t),
                Member::Subset { object, keep } => {
                    let kept = object.iter().filter(|(name, _)| keep(name));
                    write_members(out, kept.map(|(name, value)| Text::Member(name, value)));
                }
                Member::Chosen { written, keep } => {
                    let kept = (0..written.len())
                        .filter(|&i| keep.get(written.name(i)).copied().unwrap_or(false));
                    write_members(out, kept.map(|i| Text::Written(written.member(i))));
                }
            }
        }
        out.push(b'}');
    }

    /// The object's compact JSON text.
    pub(crate) fn into_text(self) -> Vec<u8> {
        let texts: usize = self
            .members
            .iter()
            .map(|(_, m)| match m {
                Member::Text(t) => t.len(),
                _ => 0,
            })
            .sum();
        let mut out = Vec::with_capacity(texts + 64 * self.members.len() + 2);
        self.write(&mut out);
        out
    }
}

/// Whether a `serde_json::Map` keeps its members sorted by name (the
/// default) rather than in insertion order (`preserve_order`), which
/// depends on the features some crate of the build turns on.
fn maps_are_sorted() -> bool {
    static SORTED: OnceLock<bool> = OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut probe = Map::new();
        probe.insert("b".into(), Value::Null);
        probe.insert("a".into(), Value::Null);
        probe.keys().next().is_some_and(|k| k == "a")
    })
}

/// Appends the compact JSON text of `value` to `out`, as `to_string` writes it.
pub(crate) fn write_value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing to a Vec cannot fail, and neither can serializing a `Value`,
    // a string or a slice of values (all map keys are strings).
    let _ = serde_json::to_writer(out, value);
}

/// A member of an object in [`write_members`].
enum Text<'a> {
    Member(&'a str, &'a Value),
    Written(&'a [u8]),
}

/// Appends some members of an object (all from one map, in its order), as
/// an object.
///
/// This needs no [`Object`] to order them: a `Map` filled with some of
/// another map's members, in that map's order, iterates them in that same
/// order (sorted either way; in insertion order with `preserve_order`), and
/// the names are unique.
fn write_members<'a>(out: &mut Vec<u8>, members: impl Iterator<Item = Text<'a>>) {
    out.push(b'{');
    for (i, member) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match member {
            Text::Member(name, value) => write_member(out, name, value),
            Text::Written(text) => out.extend_from_slice(text),
        }
    }
    out.push(b'}');
}

/// Appends `"name":value`.
fn write_member(out: &mut Vec<u8>, name: &str, value: &Value) {
    write_value(out, name);
    out.push(b':');
    write_value(out, value);
}

/// Member names as small numbers (ids), so that picking the members of
/// thousands of objects with the same few names compares no strings.
#[derive(Debug, Default)]
pub(crate) struct Names {
    ids: HashMap<String, usize>,
    names: Vec<String>,
}

impl Names {
    /// The id of a name, given it on first sight.
    fn id(&mut self, name: &str) -> usize {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len();
        self.ids.insert(name.to_owned(), id);
        self.names.push(name.to_owned());
        id
    }

    /// Every name, at its id.
    pub(crate) fn all(&self) -> &[String] {
        &self.names
    }
}

/// The members of an object, each serialized once as `"name":value`, in
/// the object's order, with the [`Names`] id of each: what
/// [`Member::Chosen`] copies rather than serialize the members again for
/// every answer.
#[derive(Debug, Clone)]
pub(crate) struct MembersText {
    text: Box<[u8]>,
    /// Where each member's text ends in `text`.
    ends: Box<[usize]>,
    /// Each member's name id.
    names: Box<[usize]>,
}

impl MembersText {
    pub(crate) fn new(object: &Map<String, Value>, names: &mut Names) -> MembersText {
        let mut text = Vec::new();
        let mut ends = Vec::with_capacity(object.len());
        let mut ids = Vec::with_capacity(object.len());
        for (name, value) in object {
            write_member(&mut text, name, value);
            ends.push(text.len());
            ids.push(names.id(name));
        }
        MembersText {
            text: text.into_boxed_slice(),
            ends: ends.into_boxed_slice(),
            names: ids.into_boxed_slice(),
        }
    }

    /// How many members.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The text of the `i`-th member.
    fn member(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    /// The name id of the `i`-th member.
    fn name(&self, i: usize) -> usize {
        self.names[i]
    }
}

/// A JSON array of items, each written by `item` (`[a,b,c]`, as
/// serializing a `Value::Array` of them would).
pub(crate) fn array<T>(
    items: impl IntoIterator<Item = T>,
    mut item: impl FnMut(T, &mut Vec<u8>),
) -> Vec<u8> {
    let mut items = items.into_iter();
    let mut out = vec![b'['];
    if let Some(x) = items.next() {
        item(x, &mut out);
        // The items of a page are alike: make room for the others at once.
        out.reserve((out.len() + 1) * items.size_hint().0 + 1);
        for x in items {
            out.push(b',');
            item(x, &mut out);
        }
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(o: Object<'_>) -> String {
        String::from_utf8(o.into_text()).expect("UTF-8")
    }

    #[test]
    fn an_object_is_written_as_its_value_would_be() {
        let big = json!({"z": [1, 2.5, null], "a": {"é\"\n": "\u{1}"}, "m": true});
        let mut o = Object::new();
        o.insert("zeta", Member::Borrowed(&big));
        o.insert("alpha", Member::Owned(json!("x")));
        let mut inner = Object::new();
        inner.insert("b", Member::Owned(json!(2)));
        inner.insert("a", Member::Owned(json!(1)));
        o.insert("mid", Member::Text(inner.into_text()));
        o.insert("list", Member::Text(b"[1,2]".to_vec()));
        let mut expected = json!({"zeta": big, "alpha": "x", "mid": {"b": 2, "a": 1}});
        expected["list"] = json!([1, 2]);
        assert_eq!(text(o), expected.to_string());
    }

    #[test]
    fn a_name_inserted_twice_keeps_its_last_value() {
        let mut o = Object::new();
        o.insert("self", Member::Owned(json!("first")));
        o.insert("id", Member::Owned(json!("1")));
        o.insert("self", Member::Owned(json!("second")));
        assert!(o.contains_key("self"));
        let mut expected = Map::new();
        expected.insert("self".into(), json!("first"));
        expected.insert("id".into(), json!("1"));
        expected.insert("self".into(), json!("second"));
        assert_eq!(text(o), Value::Object(expected).to_string());
        assert_eq!(text(Object::new()), "{}");
    }

    #[test]
    fn a_subset_is_written_as_the_map_of_those_members_would_be() {
        let Value::Object(all) = json!({"b": [1], "a": "x", "é\n": null, "c": {"z": 1, "y": 2.5}})
        else {
            unreachable!()
        };
        let mut names = Names::default();
        names.id("unrelated");
        let written = MembersText::new(&all, &mut names);
        assert_eq!(written.len(), all.len());
        for kept in [
            &[][..],
            &["a"],
            &["c", "b"],
            &["a", "b", "c", "é\n", "nope"],
        ] {
            let expected: Map<String, Value> = all
                .iter()
                .filter(|(k, _)| kept.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let expected = json!({"s": expected}).to_string();
            let keep = |name: &str| kept.contains(&name);
            let mut o = Object::new();
            o.insert(
                "s",
                Member::Subset {
                    object: &all,
                    keep: &keep,
                },
            );
            assert_eq!(text(o), expected, "{kept:?}");
            let mask: Vec<bool> = names.all().iter().map(|n| keep(n)).collect();
            let mut o = Object::new();
            o.insert(
                "s",
                Member::Chosen {
                    written: &written,
                    keep: &mask,
                },
            );
            assert_eq!(text(o), expected, "{kept:?}, written");
        }
    }

    #[test]
    fn arrays_are_written_as_their_value_would_be() {
        let items = [json!({"a": 1}), json!("b"), json!(null)];
        let got = array(&items, |v, out| write_value(out, v));
        assert_eq!(got, Value::Array(items.to_vec()).to_string().into_bytes());
        let none: [Value; 0] = [];
        assert_eq!(array(&none, |v, out| write_value(out, v)), b"[]");
    }
}
