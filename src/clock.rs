//! Wall-clock timestamps derived from the monotonic clock: a call reads the clock once (for
//! its latency) and its timestamp comes from the same reading. Each thread re-anchors to the
//! system clock every second, so the log follows clock adjustments within a second.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::record::Timestamp;

const REANCHOR: Duration = Duration::from_secs(1);

thread_local! {
    static ANCHOR: Cell<Option<(Instant, i64)>> = const { Cell::new(None) };
}

fn system_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The wall-clock time at monotonic instant `now`.
pub(crate) fn timestamp_at(now: Instant) -> Timestamp {
    let ms = ANCHOR
        .try_with(|anchor| {
            if let Some((at, ms)) = anchor.get() {
                if let Some(since) = now.checked_duration_since(at) {
                    if since < REANCHOR {
                        return ms + since.as_millis() as i64;
                    }
                }
            }
            let ms = system_ms();
            anchor.set(Some((now, ms)));
            ms
        })
        .unwrap_or_else(|_| system_ms());
    Timestamp::from_unix_ms(ms)
}
