//! A small JUnit XML reader: `<testcase>` elements with `<failure>`, `<error>` and
//! `<skipped>` children, wherever they sit under `<testsuites>`/`<testsuite>`.

use quick_xml::Reader;
use quick_xml::encoding::Decoder;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};

use crate::workspace::evidence::TestCase;

type Attrs = Vec<(String, String)>;

/// The test case being read.
struct Open {
    test: TestCase,
    /// Where its start tag is, for the error if it is never closed.
    at: u64,
    /// Inside a `<failure>`, `<error>` or `<skipped>` child: its text is the details.
    in_outcome: bool,
}

/// What the events read so far add up to.
struct State {
    decoder: Decoder,
    tests: Vec<TestCase>,
    current: Option<Open>,
    /// Elements not yet closed and where they start, innermost last: quick-xml checks
    /// that end tags match but does not complain about elements left open at the end.
    unclosed: Vec<(String, u64)>,
    /// Text since the last markup: quick-xml splits it at every `&…;` reference,
    /// but it is one piece of details.
    text: String,
    saw_root: bool,
}

/// Parses a JUnit XML document into test results.
pub fn parse(text: &str) -> Result<Vec<TestCase>, String> {
    let mut reader = Reader::from_str(text);
    // A lone `&` in hand-written details is kept, not refused.
    reader.config_mut().allow_dangling_amp = true;
    let mut state = State::new(reader.decoder());
    loop {
        let at = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| format!("{e} at byte {}", reader.error_position()))?;
        if event == Event::Eof {
            return state.finish();
        }
        state
            .apply(event, at)
            .map_err(|e| format!("{e} at byte {at}"))?;
    }
}

impl State {
    fn new(decoder: Decoder) -> Self {
        State {
            decoder,
            tests: Vec::new(),
            current: None,
            unclosed: Vec::new(),
            text: String::new(),
            saw_root: false,
        }
    }

    /// Takes in the event that starts at byte `at`.
    fn apply(&mut self, event: Event<'_>, at: u64) -> Result<(), String> {
        match event {
            Event::Text(t) => self.text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => self.text.push_str(&reference(&r)?),
            markup => {
                let text = std::mem::take(&mut self.text);
                self.add_text(&text);
                self.markup(markup, at)?;
            }
        }
        Ok(())
    }

    /// Comments, processing instructions, the XML declaration and DOCTYPE are skipped.
    fn markup(&mut self, event: Event<'_>, at: u64) -> Result<(), String> {
        match event {
            Event::Start(start) => {
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                self.unclosed.push((name, at));
                self.open(&start, Some(at))?;
            }
            Event::Empty(start) => self.open(&start, None)?,
            Event::End(end) => {
                self.unclosed.pop();
                self.close(end.name().as_ref())?;
            }
            // CDATA is a piece of details on its own, apart from the text around it.
            Event::CData(c) => self.add_text(&c.decode().map_err(|e| e.to_string())?),
            _ => {}
        }
        Ok(())
    }

    /// A start tag at `start_at`, or an empty element tag (`None`).
    fn open(&mut self, start: &BytesStart<'_>, start_at: Option<u64>) -> Result<(), String> {
        // Every tag's attributes are read so that a malformed one is an error anywhere.
        let attrs = attributes(start, self.decoder)?;
        let name = start.name();
        let name = name.as_ref();
        self.saw_root |= matches!(name, b"testsuites" | b"testsuite" | b"testcase");
        if name != b"testcase" {
            if let Some(open) = self.current.as_mut() {
                outcome(open, name, &attrs, start_at.is_none());
            }
            return Ok(());
        }
        if self.current.is_some() {
            return Err("`<testcase>` inside another `<testcase>`".into());
        }
        let test = new_case(&attrs)?;
        match start_at {
            None => self.tests.push(test),
            Some(at) => {
                let open = Open {
                    test,
                    at,
                    in_outcome: false,
                };
                self.current = Some(open);
            }
        }
        Ok(())
    }

    fn close(&mut self, name: &[u8]) -> Result<(), String> {
        if name == b"testcase" {
            let open = self
                .current
                .take()
                .ok_or("`</testcase>` without `<testcase>`")?;
            self.tests.push(open.test);
        } else if let Some(open) = self.current.as_mut() {
            open.in_outcome &= !matches!(name, b"failure" | b"error" | b"skipped");
        }
        Ok(())
    }

    fn add_text(&mut self, text: &str) {
        if let Some(open) = self.current.as_mut().filter(|o| o.in_outcome) {
            append(&mut open.test.details, text);
        }
    }

    fn finish(self) -> Result<Vec<TestCase>, String> {
        if let Some(open) = self.current {
            let (id, at) = (open.test.id, open.at);
            return Err(format!("`<testcase>` `{id}` at byte {at} is not closed"));
        }
        if let Some((name, at)) = self.unclosed.last() {
            return Err(format!("`<{name}>` at byte {at} is not closed"));
        }
        if !self.saw_root {
            return Err("no `<testsuites>`, `<testsuite>` or `<testcase>` element".into());
        }
        Ok(self.tests)
    }
}

/// A tag's attributes, unescaped, in document order.
fn attributes(start: &BytesStart<'_>, decoder: Decoder) -> Result<Attrs, String> {
    let malformed = |e: &dyn std::fmt::Display| format!("a malformed attribute ({e})");
    start
        .attributes()
        .map(|attr| {
            let attr = attr.map_err(|e| malformed(&e))?;
            let value = attr
                .decode_and_unescape_value(decoder)
                .map_err(|e| malformed(&e))?;
            let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
            Ok((key, value.into_owned()))
        })
        .collect()
}

/// A character reference or one of the five predefined entities; anything else is
/// kept as written rather than refused.
fn reference(r: &BytesRef<'_>) -> Result<String, String> {
    let name = r.decode().map_err(|e| e.to_string())?;
    let resolved = match r.resolve_char_ref() {
        Ok(Some(c)) => Some(c.to_string()),
        _ => resolve_predefined_entity(&name).map(str::to_string),
    };
    Ok(resolved.unwrap_or_else(|| format!("&{name};")))
}

fn new_case(attrs: &Attrs) -> Result<TestCase, String> {
    let get = |key: &str| attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let name = get("name").ok_or("a `<testcase>` has no `name`")?;
    let id = match get("classname").filter(|c| !c.is_empty()) {
        Some(class) => format!("{class}.{name}"),
        None => name.clone(),
    };
    let duration_ms = get("time")
        .and_then(|t| t.trim().parse::<f64>().ok())
        .map(|secs| secs * 1e3);
    Ok(TestCase {
        id,
        status: "success".into(),
        duration_ms,
        details: None,
    })
}

/// A child of a test case: failures and errors fail it, `skipped` skips it; their
/// `message` and text become the details.
fn outcome(open: &mut Open, name: &[u8], attrs: &Attrs, empty: bool) {
    let status = match name {
        b"failure" | b"error" => "fail",
        b"skipped" => "skip",
        _ => return,
    };
    // A failure wins over a skip reported for the same case.
    if open.test.status != "fail" {
        open.test.status = status.into();
    }
    if let Some((_, message)) = attrs.iter().find(|(k, _)| k == "message") {
        append(&mut open.test.details, message);
    }
    open.in_outcome = !empty;
}

fn append(details: &mut Option<String>, text: &str) {
    if text.trim().is_empty() {
        return;
    }
    match details {
        Some(d) => {
            d.push('\n');
            d.push_str(text);
        }
        None => *details = Some(text.to_string()),
    }
}
