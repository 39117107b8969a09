//! What travels between berthd and the page: the event stream's messages,
//! and session recordings.
//!
//! A recording is an asciinema cast (version 2), so its terminal part plays
//! in asciinema's own player: a JSON header line, then one `[time, code,
//! data]` line per frame. Codes `o` (output) and `r` (resize, "COLSxROWS")
//! are asciinema's; berth adds `e`, whose data is one [`Envelope`] as JSON.
//! The header carries the state the session started from, under `berth`.

use serde::{Deserialize, Serialize};

use crate::event::{Envelope, SCHEMA_VERSION};
use crate::state::{apply, State};

/// One message on the page's event stream: first a snapshot (or, when
/// resuming, nothing), then every event in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one snapshot a stream, then events: boxing would gain nothing
pub enum StreamMsg {
    /// The whole state as of event `seq`.
    Snapshot { seq: u64, state: State },
    /// One event after the snapshot (or after the `since` asked for).
    Event(Envelope),
}

/// The header line of a berth recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CastHeader {
    pub version: u32,
    pub width: u16,
    pub height: u16,
    /// Unix seconds when the session began.
    pub timestamp: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub berth: Option<CastBase>,
}

/// Where the recording's events start from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CastBase {
    pub schema: u32,
    pub seq: u64,
    pub state: State,
}

/// One frame of a recording.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Output(String),
    Resize(u16, u16),
    Event(Box<Envelope>),
}

/// A recording read back: frames with their time (seconds from the start).
#[derive(Clone, Debug, PartialEq)]
pub struct Recording {
    pub header: CastHeader,
    pub frames: Vec<(f64, Frame)>,
}

/// Why a recording cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CastError(pub String);

impl std::fmt::Display for CastError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The header line for a new recording.
pub fn cast_header(width: u16, height: u16, timestamp: u64, seq: u64, state: &State) -> String {
    let h = CastHeader {
        version: 2,
        width,
        height,
        timestamp,
        title: "berth node1 session".into(),
        berth: Some(CastBase { schema: SCHEMA_VERSION, seq, state: state.clone() }),
    };
    serde_json::to_string(&h).unwrap_or_default()
}

/// One frame line.
pub fn cast_line(t: f64, frame: &Frame) -> String {
    let (code, data) = match frame {
        Frame::Output(s) => ("o", s.clone()),
        Frame::Resize(c, r) => ("r", format!("{c}x{r}")),
        Frame::Event(e) => ("e", serde_json::to_string(e).unwrap_or_default()),
    };
    serde_json::to_string(&(t, code, data)).unwrap_or_default()
}

/// Reads a recording (a berth one, or any asciinema v2 cast: then it has
/// terminal frames only).
pub fn parse_cast(text: &str) -> Result<Recording, CastError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().ok_or_else(|| CastError("the recording is empty".into()))?;
    let header: CastHeader = serde_json::from_str(first).map_err(|e| CastError(format!("not an asciinema v2 header: {e}")))?;
    if header.version != 2 {
        return Err(CastError(format!("asciinema cast version {} (only 2 is read)", header.version)));
    }
    if let Some(b) = &header.berth {
        if b.schema != SCHEMA_VERSION {
            return Err(CastError(format!("recorded with event schema {}, this page reads {SCHEMA_VERSION}", b.schema)));
        }
    }
    let mut frames = Vec::new();
    for (i, l) in lines.enumerate() {
        let (t, code, data): (f64, String, String) = serde_json::from_str(l).map_err(|e| CastError(format!("line {}: {e}", i + 2)))?;
        let frame = match code.as_str() {
            "o" => Frame::Output(data),
            "r" => {
                let (c, r) = data.split_once('x').ok_or_else(|| CastError(format!("line {}: bad resize {data}", i + 2)))?;
                Frame::Resize(c.parse().unwrap_or(80), r.parse().unwrap_or(24))
            }
            "e" => Frame::Event(Box::new(serde_json::from_str(&data).map_err(|e| CastError(format!("line {}: bad event: {e}", i + 2)))?)),
            _ => continue, // input, markers: not shown
        };
        frames.push((t, frame));
    }
    Ok(Recording { header, frames })
}

impl Recording {
    /// The state after the first `events` recorded events.
    pub fn state_after(&self, events: usize) -> State {
        let mut s = self.header.berth.as_ref().map(|b| b.state.clone()).unwrap_or_default();
        for e in self
            .frames
            .iter()
            .filter_map(|(_, f)| match f {
                Frame::Event(e) => Some(e.as_ref()),
                _ => None,
            })
            .take(events)
        {
            apply(&mut s, &e.event);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    #[test]
    fn a_recording_round_trips_and_replays_to_the_same_state() {
        let mut live = State::default();
        let header = cast_header(100, 30, 1_767_225_600, 0, &live);
        let ev = Envelope::new(
            1,
            1_767_225_600_500,
            Event::BridgeUp { name: "docker0".into(), address: "172.17.0.1".into(), prefix: 16, created: true },
        );
        apply(&mut live, &ev.event);
        let text = [
            header,
            cast_line(0.1, &Frame::Output("$ docker run\r\n".into())),
            cast_line(0.5, &Frame::Event(Box::new(ev.clone()))),
            cast_line(0.7, &Frame::Resize(120, 40)),
            "[0.8, \"i\", \"x\"]".to_string(),
        ]
        .join("\n");
        let rec = parse_cast(&text).unwrap();
        assert_eq!((rec.header.width, rec.header.height), (100, 30));
        assert_eq!(rec.frames.len(), 3, "input frames are skipped");
        assert_eq!(rec.frames[1], (0.5, Frame::Event(Box::new(ev))));
        assert_eq!(rec.state_after(1), live);
        assert_eq!(rec.state_after(0), State::default());
    }

    #[test]
    fn a_plain_asciinema_cast_plays_and_bad_ones_say_why() {
        let rec = parse_cast("{\"version\": 2, \"width\": 80, \"height\": 24, \"timestamp\": 1}\n[0.5, \"o\", \"hi\"]\n").unwrap();
        assert_eq!(rec.frames, vec![(0.5, Frame::Output("hi".into()))]);
        assert!(parse_cast("").is_err());
        assert!(parse_cast("{\"version\": 1, \"width\": 80, \"height\": 24, \"timestamp\": 1}").unwrap_err().0.contains("version 1"));
        assert!(parse_cast("{\"version\": 2, \"width\": 80, \"height\": 24, \"timestamp\": 1}\nnot json")
            .unwrap_err()
            .0
            .contains("line 2"));
    }

    #[test]
    fn stream_messages_are_tagged() {
        let m = StreamMsg::Snapshot { seq: 3, state: State::default() };
        let j = serde_json::to_string(&m).unwrap();
        assert!(j.starts_with("{\"kind\":\"snapshot\""), "{j}");
        assert_eq!(serde_json::from_str::<StreamMsg>(&j).unwrap(), m);
        let e = StreamMsg::Event(Envelope::new(4, 5, Event::DaemonStopping));
        let j = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<StreamMsg>(&j).unwrap(), e);
    }
}
