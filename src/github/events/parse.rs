//! Parsing: the typed parse, the forgiving envelope the ingress reads, and the JSON path an
//! error names.

use super::*;

/// Why a webhook body could not be read. Every variant names the event (or `webhook`
/// for [`envelope`]) and the 1-based line and the column where the reader stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is not JSON.
    #[error("{event} payload is not valid JSON: {message} (line {line}, column {column})")]
    Syntax {
        /// `X-GitHub-Event` name, or `webhook`.
        event: String,
        /// What the JSON reader said.
        message: String,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
    /// The body ends early: empty or truncated.
    #[error("{event} payload is empty or truncated: {message} (line {line}, column {column})")]
    Truncated {
        /// `X-GitHub-Event` name, or `webhook`.
        event: String,
        /// What the JSON reader said.
        message: String,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
    /// Valid JSON that does not have the shape of this event.
    #[error("{event} payload: {message} at {path} (line {line}, column {column})")]
    Shape {
        /// `X-GitHub-Event` name, or `webhook`.
        event: String,
        /// What did not fit, e.g. "missing field `number`".
        message: String,
        /// Where, e.g. `issue` or `issue.labels[0].name`; `(root)` for the top level.
        path: String,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
}

impl ParseError {
    /// The event name the error is about (`webhook` for [`envelope`]).
    pub fn event(&self) -> &str {
        match self {
            Self::Syntax { event, .. }
            | Self::Truncated { event, .. }
            | Self::Shape { event, .. } => event,
        }
    }

    fn from_json(event: &str, body: &[u8], error: &serde_json::Error) -> Self {
        let (line, column) = (error.line(), error.column());
        let message = json_message(error);
        let event = event.to_owned();
        match error.classify() {
            serde_json::error::Category::Eof => Self::Truncated {
                event,
                message,
                line,
                column,
            },
            serde_json::error::Category::Data => {
                let offset = byte_offset(body, line, column);
                Self::Shape {
                    event,
                    path: json_path_at(body, offset),
                    message,
                    line,
                    column,
                }
            }
            serde_json::error::Category::Syntax | serde_json::error::Category::Io => Self::Syntax {
                event,
                message,
                line,
                column,
            },
        }
    }
}

/// serde_json's message without its trailing " at line L column C".
pub(super) fn json_message(error: &serde_json::Error) -> String {
    let full = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match full.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => full,
    }
}

/// Reads one known event's body into its [`Event`] variant.
pub(super) type Decoder = fn(&str, &[u8]) -> Result<Event, ParseError>;

/// Every event [`parse`] understands, with its decoder: the one list of them. The setup
/// flow's manifest is checked against it (see [`parsed_events`]), so an event parsed here
/// but not subscribed to, or subscribed to but not parsed, fails a test.
pub(super) const DECODERS: &[(&str, Decoder)] = &[
    (event_name::PING, |e, b| Ok(Event::Ping(decode(e, b)?))),
    (event_name::ISSUES, |e, b| Ok(Event::Issues(decode(e, b)?))),
    (event_name::ISSUE_COMMENT, |e, b| {
        Ok(Event::IssueComment(decode(e, b)?))
    }),
    (event_name::PULL_REQUEST, |e, b| {
        Ok(Event::PullRequest(decode(e, b)?))
    }),
    (event_name::PULL_REQUEST_REVIEW, |e, b| {
        Ok(Event::PullRequestReview(decode(e, b)?))
    }),
    (event_name::PULL_REQUEST_REVIEW_COMMENT, |e, b| {
        Ok(Event::PullRequestReviewComment(decode(e, b)?))
    }),
    (event_name::CHECK_SUITE, |e, b| {
        Ok(Event::CheckSuite(decode(e, b)?))
    }),
    (event_name::CHECK_RUN, |e, b| {
        Ok(Event::CheckRun(decode(e, b)?))
    }),
    (event_name::WORKFLOW_RUN, |e, b| {
        Ok(Event::WorkflowRun(decode(e, b)?))
    }),
    (event_name::INSTALLATION, |e, b| {
        Ok(Event::Installation(decode(e, b)?))
    }),
    (event_name::INSTALLATION_REPOSITORIES, |e, b| {
        Ok(Event::InstallationRepositories(decode(e, b)?))
    }),
];

/// The `X-GitHub-Event` names [`parse`] reads into a typed [`Event`]; every other name is
/// [`Event::Unknown`].
pub fn parsed_events() -> impl Iterator<Item = &'static str> {
    DECODERS.iter().map(|(name, _)| *name)
}

/// Parses a webhook body into an [`Event`]. `event` is the `X-GitHub-Event` header.
/// Unknown event names give [`Event::Unknown`] without reading the body.
pub fn parse(event: &str, body: &[u8]) -> Result<Event, ParseError> {
    match DECODERS.iter().find(|(name, _)| *name == event) {
        Some((_, decoder)) => decoder(event, body),
        None => Ok(Event::Unknown {
            event: event.to_owned(),
        }),
    }
}

pub(super) fn decode<T: DeserializeOwned>(event: &str, body: &[u8]) -> Result<Box<T>, ParseError> {
    serde_json::from_slice(body)
        .map(Box::new)
        .map_err(|error| ParseError::from_json(event, body, &error))
}

// ---------------------------------------------------------------------------------------
// Envelope
// ---------------------------------------------------------------------------------------

/// The few fields the HTTP ingress stores with every delivery, whatever the event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// `action`, when it is a string.
    pub action: Option<String>,
    /// `installation.id`, when it is an integer.
    pub installation_id: Option<i64>,
    /// `repository.id`, when it is an integer.
    pub repository_id: Option<i64>,
    /// `repository.full_name`, when it is a string.
    pub repository_full_name: Option<String>,
}

impl Envelope {
    /// The delivery to store: `payload` (the body this envelope was read from), with what the
    /// envelope says it is about.
    pub fn into_delivery(
        self,
        delivery_id: crate::model::DeliveryId,
        event: &str,
        payload: String,
        received_at: crate::model::Timestamp,
    ) -> crate::model::delivery::NewDelivery {
        crate::model::delivery::NewDelivery {
            delivery_id,
            event: event.to_owned(),
            action: self.action,
            installation_id: self.installation_id.map(crate::model::InstallationId),
            repository_id: self.repository_id.map(crate::model::RepositoryId),
            repository: self.repository_full_name,
            payload,
            received_at,
        }
    }
}

/// Reads the [`Envelope`] of any webhook body. Skips everything else without building
/// it, and ignores fields of unexpected types; fails only when the body is not a JSON
/// object.
pub fn envelope(body: &[u8]) -> Result<Envelope, ParseError> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    reader
        .deserialize_map(EnvelopeVisitor)
        .and_then(|envelope| reader.end().map(|()| envelope))
        .map_err(|error| ParseError::from_json(ENVELOPE_SUBJECT, body, &error))
}

/// Top-level keys the envelope reads.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
pub(super) enum EnvelopeField {
    Action,
    Installation,
    Repository,
    #[serde(other)]
    Other,
}

/// Keys the envelope reads inside `installation` and `repository`.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
pub(super) enum NestedField {
    Id,
    FullName,
    #[serde(other)]
    Other,
}

pub(super) struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Envelope, M::Error> {
        let mut envelope = Envelope::default();
        while let Some(field) = map.next_key::<EnvelopeField>()? {
            match field {
                EnvelopeField::Action => envelope.action = map.next_value::<Loose>()?.text(),
                EnvelopeField::Installation => {
                    envelope.installation_id = map.next_value::<Loose>()?.object_id();
                }
                EnvelopeField::Repository => {
                    let repository = map.next_value::<Loose>()?;
                    envelope.repository_id = repository.object_id();
                    envelope.repository_full_name = repository.object_full_name();
                }
                EnvelopeField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(envelope)
    }
}

/// Any JSON value, keeping only what the envelope may want from it.
pub(super) enum Loose {
    Text(String),
    Integer(i64),
    Object {
        id: Option<i64>,
        full_name: Option<String>,
    },
    Other,
}

impl Loose {
    fn text(self) -> Option<String> {
        match self {
            Self::Text(text) => Some(text),
            _ => None,
        }
    }

    fn object_id(&self) -> Option<i64> {
        match self {
            Self::Object { id, .. } => *id,
            _ => None,
        }
    }

    fn object_full_name(self) -> Option<String> {
        match self {
            Self::Object { full_name, .. } => full_name,
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor)
    }
}

pub(super) struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Loose, E> {
        Ok(Loose::Other)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Loose, E> {
        Ok(Loose::Integer(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Loose, E> {
        Ok(i64::try_from(value).map_or(Loose::Other, Loose::Integer))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Loose, E> {
        Ok(Loose::Other)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Loose, E> {
        Ok(Loose::Text(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Loose, E> {
        Ok(Loose::Text(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Loose, E> {
        Ok(Loose::Other)
    }

    fn visit_none<E: de::Error>(self) -> Result<Loose, E> {
        Ok(Loose::Other)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Loose, D::Error> {
        Loose::deserialize(deserializer)
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Loose, S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Loose, M::Error> {
        let (mut id, mut full_name) = (None, None);
        while let Some(field) = map.next_key::<NestedField>()? {
            match field {
                NestedField::Id => {
                    if let Loose::Integer(value) = map.next_value::<Loose>()? {
                        id = Some(value);
                    }
                }
                NestedField::FullName => full_name = map.next_value::<Loose>()?.text(),
                NestedField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Loose::Object { id, full_name })
    }
}

// ---------------------------------------------------------------------------------------
// Error paths
// ---------------------------------------------------------------------------------------

/// The byte offset of serde_json's (1-based line, column) position: the column counts
/// bytes read on that line.
pub(super) fn byte_offset(body: &[u8], line: usize, column: usize) -> usize {
    let Some(lines_before) = line.checked_sub(1) else {
        return 0;
    };
    let line_start = if lines_before == 0 {
        0
    } else {
        match body
            .iter()
            .enumerate()
            .filter(|&(_, &byte)| byte == b'\n')
            .nth(lines_before - 1)
        {
            Some((newline, _)) => newline + 1,
            None => return body.len(),
        }
    };
    line_start.saturating_add(column).min(body.len())
}

/// One open container while scanning JSON text.
pub(super) enum Frame {
    Object {
        key: Option<String>,
        awaiting_key: bool,
    },
    Array {
        index: usize,
    },
}

/// The JSON path (`issue.labels[0].name`) of the value being read at byte `offset`,
/// found by scanning the text before it. serde_json reports a data error after the
/// offending value: after a wrong-typed scalar (its key is still open), or after the
/// `}` / `]` of an object missing a field or an array of the wrong length (so the path
/// is that object's or array's own). Only used on errors, so it may be slow, but it
/// must be total: it tolerates any bytes.
pub(super) fn json_path_at(body: &[u8], offset: usize) -> String {
    let end = offset.min(body.len());
    // Bounded, whatever the body: the first MAX_PATH_DEPTH levels are kept, deeper ones
    // only counted, and keys are cut short.
    let mut stack: Vec<Frame> = Vec::new();
    let mut deeper = 0usize;
    let mut i = 0;
    while i < end {
        match body[i] {
            b'{' | b'[' if stack.len() >= MAX_PATH_DEPTH => deeper += 1,
            b'{' => stack.push(Frame::Object {
                key: None,
                awaiting_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' if deeper > 0 => deeper -= 1,
            b'}' | b']' => {
                stack.pop();
            }
            b',' if deeper == 0 => match stack.last_mut() {
                Some(Frame::Object { awaiting_key, .. }) => *awaiting_key = true,
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            b':' if deeper == 0 => {
                if let Some(Frame::Object { awaiting_key, .. }) = stack.last_mut() {
                    *awaiting_key = false;
                }
            }
            b'"' => {
                let start = i + 1;
                let close = string_end(body, start, end);
                if deeper == 0
                    && let Some(Frame::Object {
                        key,
                        awaiting_key: true,
                    }) = stack.last_mut()
                {
                    let text = &body[start..close.min(start + MAX_PATH_KEY)];
                    let mut name = String::from_utf8_lossy(text).into_owned();
                    if close - start > MAX_PATH_KEY {
                        name.push('…');
                    }
                    *key = Some(name);
                }
                i = close;
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = render_path(&stack);
    if deeper > 0 {
        path.push_str(&format!("…({deeper} levels deeper)"));
    }
    path
}

/// Levels of a JSON path kept when reporting where a payload went wrong.
pub(super) const MAX_PATH_DEPTH: usize = 32;
/// Bytes of one key kept in a reported JSON path.
pub(super) const MAX_PATH_KEY: usize = 100;

/// Index of the quote closing a JSON string whose text starts at `start`, or `end`.
pub(super) fn string_end(body: &[u8], start: usize, end: usize) -> usize {
    let mut j = start;
    while j < end {
        match body[j] {
            b'\\' => j += 2,
            b'"' => return j,
            _ => j += 1,
        }
    }
    end
}

pub(super) fn render_path(stack: &[Frame]) -> String {
    let mut path = String::new();
    for frame in stack {
        match frame {
            Frame::Object {
                key: Some(key),
                awaiting_key: false,
            } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object { .. } => {}
            Frame::Array { index } => {
                path.push('[');
                path.push_str(&index.to_string());
                path.push(']');
            }
        }
    }
    if path.is_empty() {
        ROOT_PATH.to_owned()
    } else {
        path
    }
}
