//! A small element tree over quick-xml, shared by every XML format the crate speaks.
//!
//! The Import/Export formats (drive manifest, drive log, metadata and properties files, export blob
//! lists) are small, element-only documents whose real-world copies vary in element order and
//! whitespace. Reading them into a tree first lets each format's parser look elements up by name in
//! any order, report the byte offset of the element at fault, and ignore what it does not know.
//!
//! This module owns only syntax: well-formedness, escaping and byte offsets. It knows nothing of any
//! format's element names. It does no I/O.

use std::fmt::Write as _;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// The deepest element nesting accepted; the formats here nest at most five levels.
pub(crate) const MAX_DEPTH: usize = 32;

/// One XML element: its local name, attributes, direct text and child elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    /// Local name (namespace prefix removed).
    pub name: String,
    /// Attributes in document order, values unescaped and normalized (XML 1.0 §3.3.3).
    pub attrs: Vec<(String, String)>,
    /// The concatenated text directly inside this element (unescaped, CDATA included).
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// Byte offset of the element's start tag in the document.
    pub offset: u64,
}

/// A document that is not well-formed XML, or not one this crate accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed XML at byte {offset}: {message}")]
pub struct XmlError {
    /// Byte offset in the document where the problem was found.
    pub offset: u64,
    /// What is wrong, in words.
    pub message: String,
}

impl Element {
    /// The first child named `name`, if any.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The value of attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The text of the first child named `name`, if that child exists.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Parse a whole document and return its root element.
///
/// Comments, processing instructions, the XML declaration and a DOCTYPE are skipped; entity
/// references other than the five predefined ones and character references are errors.
///
/// # Errors
/// [`XmlError`] with the byte offset of the fault for: input that is not UTF-8, mismatched or
/// unclosed tags, bad escapes, duplicate attributes, a NUL character (which the writer could not
/// write back), text or a second element outside the root,
/// nesting deeper than [`MAX_DEPTH`], or a document with no root element.
pub(crate) fn parse(input: &[u8]) -> Result<Element, XmlError> {
    let mut reader = Reader::from_reader(input);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = false;

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let offset = reader.buffer_position();
        let event = reader.read_event().map_err(|e| XmlError {
            offset: reader.error_position(),
            message: e.to_string(),
        })?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(err(offset, "content after the root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(err(
                        offset,
                        format!("elements nested deeper than {MAX_DEPTH}"),
                    ));
                }
                stack.push(element(&start, offset)?);
            }
            Event::Empty(start) => {
                let el = element(&start, offset)?;
                close(&mut stack, &mut root, el, offset)?;
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| err(offset, "unexpected end tag"))?;
                close(&mut stack, &mut root, el, offset)?;
            }
            Event::Text(text) => {
                let s = text
                    .xml10_content()
                    .map_err(|e| err(offset, e.to_string()))?;
                push_text(&mut stack, &s, offset)?;
            }
            Event::CData(data) => {
                let s = data
                    .xml10_content()
                    .map_err(|e| err(offset, e.to_string()))?;
                push_text(&mut stack, &s, offset)?;
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = r.decode().map_err(|e| err(offset, e.to_string()))?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| err(offset, format!("unknown entity &{name};")))?
                            .to_string()
                    }
                    Err(e) => return Err(err(offset, e.to_string())),
                };
                push_text(&mut stack, &resolved, offset)?;
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => {
                if let Some(open) = stack.last() {
                    return Err(err(
                        offset,
                        format!("element <{}> is not closed", open.name),
                    ));
                }
                return root.ok_or_else(|| err(offset, "no root element"));
            }
        }
    }
}

fn err(offset: u64, message: impl Into<String>) -> XmlError {
    XmlError {
        offset,
        message: message.into(),
    }
}

fn element(start: &BytesStart<'_>, offset: u64) -> Result<Element, XmlError> {
    let name = std::str::from_utf8(start.local_name().into_inner())
        .map_err(|_| err(offset, "element name is not UTF-8"))?
        .to_string();
    let mut attrs: Vec<(String, String)> = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| err(offset, e.to_string()))?;
        let key = std::str::from_utf8(attr.key.local_name().into_inner())
            .map_err(|_| err(offset, "attribute name is not UTF-8"))?
            .to_string();
        if attr.key.as_ref().starts_with(b"xmlns") {
            continue;
        }
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| err(offset, format!("attribute {key}: {e}")))?
            .into_owned();
        if value.contains('\0') {
            return Err(err(
                offset,
                format!("attribute {key}: NUL is not allowed in XML"),
            ));
        }
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        text: String::new(),
        children: Vec::new(),
        offset,
    })
}

fn close(
    stack: &mut [Element],
    root: &mut Option<Element>,
    mut el: Element,
    offset: u64,
) -> Result<(), XmlError> {
    // A finished element grows no more: give back what the vectors reserved while it was read
    // (a manifest of 30,000 blobs holds some 300,000 elements, most with one to six children).
    el.children.shrink_to_fit();
    el.attrs.shrink_to_fit();
    el.text.shrink_to_fit();
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None if root.is_none() => *root = Some(el),
        None => return Err(err(offset, "a second root element")),
    }
    Ok(())
}

fn push_text(stack: &mut [Element], text: &str, offset: u64) -> Result<(), XmlError> {
    // XML 1.0 has no NUL, not even as `&#0;`, so a NUL read here could never be written back.
    if text.contains('\0') {
        return Err(err(offset, "NUL is not allowed in XML"));
    }
    match stack.last_mut() {
        Some(el) => el.text.push_str(text),
        None if text.trim().is_empty() => {}
        None => return Err(err(offset, "text outside the root element")),
    }
    Ok(())
}

/// A deterministic, indenting XML writer for the crate's formats.
///
/// Output is UTF-8 with an `<?xml version="1.0" encoding="UTF-8"?>` declaration, two-space
/// indentation and `\r\n` line ends, as the Windows tools that produce these files write them.
/// Text and attribute values are escaped so that [`parse`] returns them byte for byte, including
/// line breaks, tabs and control characters (written as character references).
#[derive(Debug, Default)]
pub(crate) struct XmlWriter {
    out: String,
    depth: usize,
}

/// The line end the writer uses.
pub(crate) const EOL: &str = "\r\n";

impl XmlWriter {
    /// A writer that has already written the XML declaration.
    pub fn new() -> Self {
        let mut w = XmlWriter {
            out: String::with_capacity(4096),
            depth: 0,
        };
        w.out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        w.out.push_str(EOL);
        w
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn open_tag(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            escape_into(&mut self.out, v, true);
            self.out.push('"');
        }
    }

    /// Write `<name attrs>` and indent what follows.
    pub fn start(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.open_tag(name, attrs);
        self.out.push('>');
        self.out.push_str(EOL);
        self.depth += 1;
    }

    /// Write `</name>`, closing the innermost [`XmlWriter::start`].
    pub fn end(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self.out.push_str(EOL);
    }

    /// Write `<name attrs>text</name>` on one line.
    pub fn leaf(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.open_tag(name, attrs);
        self.out.push('>');
        escape_into(&mut self.out, text, false);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self.out.push_str(EOL);
    }

    /// Write `<name attrs />`.
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.open_tag(name, attrs);
        self.out.push_str(" />");
        self.out.push_str(EOL);
    }

    /// The finished document.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Escape `s` for XML text (`attr == false`) or a double-quoted attribute value (`attr == true`).
fn escape_into(out: &mut String, s: &str, attr: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            '\n' if !attr => out.push('\n'),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "&#x{:X};", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_attributes_text_children_and_offsets() {
        let doc = br#"<?xml version="1.0"?>
<A x="1 &amp; 2"><B>t&lt;x</B><!-- c --><C y="z" /></A>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "A");
        assert_eq!(root.attr("x"), Some("1 & 2"));
        assert_eq!(root.child_text("B"), Some("t<x"));
        assert_eq!(root.child("C").unwrap().attr("y"), Some("z"));
        assert_eq!(root.offset, 22);
        assert_eq!(&doc[root.child("C").unwrap().offset as usize..][..2], b"<C");
    }

    #[test]
    fn rejects_malformed_documents_with_offsets() {
        for (doc, what) in [
            (&b"<A><B></A>"[..], "mismatch"),
            (b"<A>", "unclosed"),
            (b"", "empty"),
            (b"<A/><B/>", "two roots"),
            (b"<A>&bogus;</A>", "entity"),
            (b"<A x='1' x='2'/>", "duplicate attribute"),
            (b"\xff\xfe<A/>", "not utf-8"),
            (b"<A>a\0b</A>", "raw NUL in text"),
            (b"<A x='\0'/>", "raw NUL in an attribute"),
        ] {
            assert!(parse(doc).is_err(), "{what} accepted");
        }
    }

    #[test]
    fn a_parsed_tree_keeps_no_spare_capacity() {
        let root = parse(b"<a x='1'><b>text</b><c/></a>").expect("parse");
        assert_eq!(root.children.capacity(), 2);
        assert_eq!(root.attrs.capacity(), 1);
        assert_eq!(root.children[0].text.capacity(), 4);
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        let e = parse(deep.as_bytes()).unwrap_err();
        assert!(e.message.contains("deeper"), "{e}");
    }

    #[test]
    fn writer_output_parses_back_exactly() {
        let nasty = "a&b<c>\"d'\r\n\te\u{1}f ü";
        let mut w = XmlWriter::new();
        w.start("Root", &[("k", nasty)]);
        w.leaf("Leaf", &[], nasty);
        w.empty("E", &[("v", " lead")]);
        w.end("Root");
        let doc = w.finish();
        let root = parse(doc.as_bytes()).unwrap();
        assert_eq!(root.attr("k"), Some(nasty));
        assert_eq!(root.child_text("Leaf"), Some(nasty));
        assert_eq!(root.child("E").unwrap().attr("v"), Some(" lead"));
    }
}
