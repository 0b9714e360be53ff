//! Reading a server-sent event stream (`text/event-stream`) as it arrives in chunks: whole
//! events only, keep-alive comments skipped. `jobs logs -f` and `top`'s fleet events read
//! their streams through it.

/// One server-sent event: its `id` (from which a reconnect resumes, as `Last-Event-ID`), its
/// `event` name and its `data` lines joined.
#[derive(Debug, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub kind: String,
    pub data: String,
}

/// Takes the first whole event (up to a blank line) out of `buf`; keep-alive comments and
/// fields other than `id`, `event` and `data` are skipped.
pub fn next_event(buf: &mut Vec<u8>) -> Option<SseEvent> {
    let end = buf.windows(2).position(|w| w == b"\n\n")?;
    let raw: Vec<u8> = buf.drain(..end + 2).collect();
    let text = String::from_utf8_lossy(&raw);
    let mut event = SseEvent {
        id: None,
        kind: "message".into(),
        data: String::new(),
    };
    for line in text.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => event.id = Some(value.to_owned()),
            "event" => event.kind = value.to_owned(),
            "data" if event.data.is_empty() => event.data = value.to_owned(),
            "data" => event.data = format!("{}\n{value}", event.data),
            _ => {}
        }
    }
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_whole_across_chunks_and_keep_alives_are_skipped() {
        let mut buf = b":keep-alive\n\nid: 1:2\nevent: log\ndata: {\"a\":1}\n".to_vec();
        assert_eq!(
            next_event(&mut buf),
            Some(SseEvent {
                id: None,
                kind: "message".into(),
                data: String::new()
            })
        );
        assert_eq!(next_event(&mut buf), None, "the event is not whole yet");
        buf.extend_from_slice(b"\nevent: error\ndata: store lost\n\n");
        let log = next_event(&mut buf).unwrap();
        assert_eq!(
            (log.id.as_deref(), log.kind.as_str(), log.data.as_str()),
            (Some("1:2"), "log", "{\"a\":1}")
        );
        assert_eq!(next_event(&mut buf).unwrap().data, "store lost");
        assert!(buf.is_empty());
    }
}
