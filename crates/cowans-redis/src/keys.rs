//! Key and channel naming: a queue's keys share the hash tag `{<prefix>:q:<queue>}`, the
//! global ones `{<prefix>}`.

use cowans_core::{QueueName, queue::QueueResult};

use crate::{RedisDriver, value::bad};

impl RedisDriver {
    /// The wake-up channel.
    pub fn channel(&self) -> String {
        format!("{}:wakeup", self.prefix)
    }

    pub(crate) fn global(&self) -> String {
        format!("{{{}}}", self.prefix)
    }

    pub(crate) fn qkey(&self, queue: &str) -> String {
        format!("{{{}:q:{queue}}}", self.prefix)
    }
}

pub(crate) fn queue_name(name: &str) -> QueueResult<QueueName> {
    QueueName::new(name).map_err(|e| bad(format!("stored queue name {name:?}: {e}")))
}
