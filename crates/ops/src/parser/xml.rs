//! XML text → JSON value, via `quick-xml`.
//!
//! The document becomes `{root_tag: value}` where an element's value is:
//! an object of its children when it has child elements (see
//! [`Element::into_value`] for repeated tags), else its raw text, else null. Attributes,
//! comments, processing instructions and declarations are ignored.

use quick_xml::Reader;
use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::{BytesRef, Event};
use serde_json::{Map, Value};

/// Deepest element nesting accepted (guards the recursive conversion).
const MAX_DEPTH: usize = 256;

/// The tag used to wrap text that is not a single well-formed document.
const WRAPPER_TAG: &str = "root";

/// One parsed element: its tag, its text (if any text node was seen) and
/// its child elements.
#[derive(Debug, Default)]
struct Element {
    name: String,
    text: Option<String>,
    children: Vec<Element>,
}

impl Element {
    fn new(name: &str) -> Self {
        Self { name: name.to_owned(), ..Self::default() }
    }

    fn push_text(&mut self, text: &str) {
        self.text.get_or_insert_with(String::new).push_str(text);
    }

    /// The JSON value of this element, as the reference builds it: a leaf
    /// is its raw text (null without text); an element with children is an
    /// object where a leaf child's value replaces any earlier value of its
    /// tag (the last one wins), while a child with children of its own is
    /// collected into a list when its tag repeats (an earlier non-list
    /// value becomes the list's first item).
    fn into_value(self) -> Value {
        if self.children.is_empty() {
            return self.text.map_or(Value::Null, Value::String);
        }
        let mut map = Map::new();
        for child in self.children {
            let name = child.name.clone();
            if child.children.is_empty() {
                map.insert(name, child.into_value());
                continue;
            }
            let value = child.into_value();
            match map.get_mut(&name) {
                Some(Value::Array(items)) => items.push(value),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, value]);
                }
                None => {
                    map.insert(name, value);
                }
            }
        }
        Value::Object(map)
    }
}

/// Parse `text` as XML. When it is not a single well-formed document (for
/// example several top-level elements, or prose around them), the text is
/// wrapped in `<root>…</root>` and the wrapper's children are returned.
pub(crate) fn parse(text: &str) -> Result<Value, String> {
    match parse_document(text) {
        Ok(root) => {
            let mut map = Map::new();
            let name = root.name.clone();
            map.insert(name, root.into_value());
            Ok(Value::Object(map))
        }
        Err(first_error) => {
            let wrapped = format!("<{WRAPPER_TAG}>{text}</{WRAPPER_TAG}>");
            match parse_document(&wrapped) {
                Ok(wrapper) if !wrapper.children.is_empty() => Ok(wrapper.into_value()),
                _ => Err(first_error),
            }
        }
    }
}

/// Parse a single-rooted document into its element tree.
fn parse_document(text: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(text);
    // Model output often contains a bare `&`; keep it as text.
    reader.config_mut().allow_dangling_amp = true;

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;

    loop {
        let event = reader.read_event().map_err(|e| format!("{e} (at byte {})", reader.error_position()))?;
        match event {
            Event::Start(start) => {
                if stack.is_empty() && root.is_some() {
                    return Err(extra_root(start.name().into_inner()));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("elements nested deeper than {MAX_DEPTH} levels"));
                }
                stack.push(Element::new(start.name().into_inner()));
            }
            Event::Empty(start) => {
                let element = Element::new(start.name().into_inner());
                attach(&mut stack, &mut root, element)?;
            }
            Event::End(_) => {
                // quick-xml has already checked that the end tag matches.
                if let Some(element) = stack.pop() {
                    attach(&mut stack, &mut root, element)?;
                }
            }
            Event::Text(text) => {
                let content = text.xml10_content();
                match stack.last_mut() {
                    Some(parent) => parent.push_text(&content),
                    None if content.trim().is_empty() => {}
                    None => return Err("text outside the root element".to_owned()),
                }
            }
            Event::CData(data) => match stack.last_mut() {
                Some(parent) => parent.push_text(&data.xml10_content()),
                None => return Err("CDATA outside the root element".to_owned()),
            },
            Event::GeneralRef(reference) => match stack.last_mut() {
                Some(parent) => parent.push_text(&resolve_reference(&reference)?),
                None => return Err("text outside the root element".to_owned()),
            },
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }

    if let Some(open) = stack.last() {
        return Err(format!("element <{}> is not closed", open.name));
    }
    root.ok_or_else(|| "no root element found".to_owned())
}

/// Attach a finished element to its parent, or make it the root.
fn attach(stack: &mut [Element], root: &mut Option<Element>, element: Element) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_some() => return Err(extra_root(&element.name)),
        None => *root = Some(element),
    }
    Ok(())
}

fn extra_root(name: &str) -> String {
    format!("more than one root element (found another <{name}>)")
}

/// Decode `&name;` / `&#NN;` / `&#xNN;`. Unknown named entities are kept
/// verbatim.
fn resolve_reference(reference: &BytesRef<'_>) -> Result<String, String> {
    if let Some(c) = reference.resolve_char_ref().map_err(|e| e.to_string())? {
        return Ok(c.to_string());
    }
    let name: &str = reference;
    Ok(match resolve_xml_entity(name) {
        Some(resolved) => resolved.to_owned(),
        None => format!("&{name};"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_a_document() {
        let doc = parse("<root><flag>true</flag><name> Alice </name></root>").unwrap();
        assert_eq!(doc, json!({"root": {"flag": "true", "name": " Alice "}}));
    }

    #[test]
    fn repeated_leaves_keep_the_last_and_repeated_groups_form_a_list() {
        let doc = parse("<d><i>a</i><i>b</i></d>").unwrap();
        assert_eq!(doc, json!({"d": {"i": "b"}}));
        let doc = parse("<d><g><x>1</x></g><g><x>2</x></g><g><x>3</x></g></d>").unwrap();
        assert_eq!(doc, json!({"d": {"g": [{"x": "1"}, {"x": "2"}, {"x": "3"}]}}));
        // A leaf then a group: the leaf's text starts the list.
        let doc =
            parse("<r><item>a</item><other/><item>b</item><item><x>1</x></item><group><k>1</k></group></r>").unwrap();
        assert_eq!(doc, json!({"r": {"item": ["b", {"x": "1"}], "other": null, "group": {"k": "1"}}}));
        // A group then a leaf: the leaf replaces the group.
        let doc = parse("<r><item><x>1</x></item><item>z</item></r>").unwrap();
        assert_eq!(doc, json!({"r": {"item": "z"}}));
    }

    #[test]
    fn ignores_attributes_comments_and_instructions() {
        let doc =
            parse("<?xml version=\"1.0\"?>\n<!-- hi --><r a=\"1\"><?pi x?><v id=\"2\">x<!-- c -->y</v><e></e></r>\n")
                .unwrap();
        assert_eq!(doc, json!({"r": {"v": "xy", "e": null}}));
    }

    #[test]
    fn decodes_entities_and_cdata() {
        let doc = parse("<r><a>Tom &amp; Jerry &lt;3 &#65;&#x42; &nbsp;</a><b><![CDATA[<raw> & ]]></b></r>").unwrap();
        assert_eq!(doc, json!({"r": {"a": "Tom & Jerry <3 AB &nbsp;", "b": "<raw> & "}}));
        let doc = parse("<a>fish & chips</a>").unwrap();
        assert_eq!(doc, json!({"a": "fish & chips"}));
    }

    #[test]
    fn wraps_multiple_roots_and_surrounding_text() {
        assert_eq!(parse("<a>1</a><b>2</b>").unwrap(), json!({"a": "1", "b": "2"}));
        assert_eq!(parse("<a>1</a>\n<a>2</a>").unwrap(), json!({"a": "2"}));
        assert_eq!(parse("<root><a>1</a></root> trailing").unwrap(), json!({"root": {"a": "1"}}));
        assert_eq!(parse("Sure, here it is:\n<answer>42</answer>\nBye").unwrap(), json!({"answer": "42"}));
    }

    #[test]
    fn reports_errors() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a>").is_err());
        assert!(parse("plain text").is_err());
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep).is_err());
    }
}
