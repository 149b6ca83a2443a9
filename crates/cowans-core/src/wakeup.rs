//! Wake-ups: the messages on the `cowans_jobs` NOTIFY channel that tell producers to look again,
//! encoded and parsed here and nowhere else. The store sends them (it binds the encoded text;
//! no SQL builds a payload), the engine's listener parses them.
//!
//! The wire form is short on purpose (a NOTIFY payload is at most 8,000 bytes and every enqueue
//! statement sends one per queue): `a:<queue>:<priority>`, `s:<queue>`, `r:<queue>`,
//! `q:<queue>`, `l:<queue>`, `c:<job id>`.

use crate::{JobId, QueueName};

/// The NOTIFY channel of wake-ups.
pub const WAKEUP_CHANNEL: &str = "cowans_jobs";

/// Why a producer (or a running job's handler) should look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wakeup {
    /// New runnable jobs, the highest of them at `priority`.
    Enqueued { queue: QueueName, priority: i32 },
    /// New scheduled jobs (delayed enqueue or backoff): the next one may fall due sooner.
    Scheduled { queue: QueueName },
    /// Existing jobs became runnable again (promotion, retry, rescue, hand-back, re-drive); they
    /// may sort before a producer's claim cursor.
    Runnable { queue: QueueName },
    /// The queue's control row (pause, limits) changed.
    Control { queue: QueueName },
    /// Fleet-wide concurrency permits of the queue were given back.
    PermitsFreed { queue: QueueName },
    /// A running job was cancelled: its handler should stop.
    Cancel { job: JobId },
}

impl Wakeup {
    pub fn encode(&self) -> String {
        match self {
            Wakeup::Enqueued { queue, priority } => format!("a:{queue}:{priority}"),
            Wakeup::Scheduled { queue } => format!("s:{queue}"),
            Wakeup::Runnable { queue } => format!("r:{queue}"),
            Wakeup::Control { queue } => format!("q:{queue}"),
            Wakeup::PermitsFreed { queue } => format!("l:{queue}"),
            Wakeup::Cancel { job } => format!("c:{job}"),
        }
    }

    /// The wake-up a payload means, or `None` for one this version does not know. An
    /// `a:` payload whose priority does not parse means "the highest priority" (the producer
    /// then claims from the head of the queue, which is always correct).
    pub fn parse(payload: &str) -> Option<Wakeup> {
        let (tag, rest) = payload.split_once(':')?;
        let queue = |name: &str| QueueName::new(name).ok();
        Some(match tag {
            "a" => match rest.rsplit_once(':') {
                Some((name, priority)) => Wakeup::Enqueued {
                    queue: queue(name)?,
                    priority: priority.parse().unwrap_or(i32::MAX),
                },
                None => Wakeup::Runnable {
                    queue: queue(rest)?,
                },
            },
            "s" => Wakeup::Scheduled {
                queue: queue(rest)?,
            },
            "r" => Wakeup::Runnable {
                queue: queue(rest)?,
            },
            "q" => Wakeup::Control {
                queue: queue(rest)?,
            },
            "l" => Wakeup::PermitsFreed {
                queue: queue(rest)?,
            },
            "c" => Wakeup::Cancel {
                job: JobId(rest.parse().ok()?),
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str) -> QueueName {
        QueueName::new(name).unwrap()
    }

    #[test]
    fn every_wakeup_round_trips() {
        for w in [
            Wakeup::Enqueued {
                queue: q("shopify.push"),
                priority: -3,
            },
            Wakeup::Scheduled { queue: q("a") },
            Wakeup::Runnable { queue: q("b-1") },
            Wakeup::Control { queue: q("c_2") },
            Wakeup::PermitsFreed { queue: q("d") },
            Wakeup::Cancel { job: JobId(42) },
        ] {
            assert_eq!(
                Wakeup::parse(&w.encode()),
                Some(w.clone()),
                "{}",
                w.encode()
            );
        }
    }

    #[test]
    fn unknown_or_broken_payloads_are_refused_or_read_safely() {
        assert_eq!(Wakeup::parse("garbage"), None);
        assert_eq!(Wakeup::parse("x:queue"), None);
        assert_eq!(Wakeup::parse("c:notanumber"), None);
        assert_eq!(Wakeup::parse("r:Bad Queue"), None);
        assert_eq!(
            Wakeup::parse("a:q:notanumber"),
            Some(Wakeup::Enqueued {
                queue: q("q"),
                priority: i32::MAX
            }),
            "an unreadable priority means 'look from the head'"
        );
        assert_eq!(
            Wakeup::parse("a:q"),
            Some(Wakeup::Runnable { queue: q("q") })
        );
    }
}
