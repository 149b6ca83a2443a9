//! Enqueue: one job, or many in one statement, on any executor (so inside the caller's own
//! transaction the jobs become visible, and runnable, only when it commits).

use std::{collections::HashMap, future::Future, pin::Pin};

/// A boxed future: the enqueue functions box theirs so they can be awaited inside spawned tasks
/// with a borrowed transaction (`&mut *tx`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

use cowans_core::{Actor, JobId, JobState, QueueName, WAKEUP_CHANNEL, Wakeup};
use sqlx::{Acquire, PgConnection, Postgres};

use crate::{Enqueued, NewJob, Result, StoreError};

// One statement for one job or ten thousand: arrays in, unnest, rows out. Ids come from an
// identity column, so ordering by id returns inserted rows in input order. Jobs with a unique
// key go through `ON CONFLICT DO NOTHING` (a conflict is a duplicate, never an error); batches
// without one use the plain insert, so plain jobs pay nothing for the feature. `$input` is the
// input's form (`arrays!()` or `uniform!()`); both bind $1..$10 in the same order.
macro_rules! insert_sql {
    ($input:expr, $conflict:literal, $tail:expr) => {
        concat!(
            $input,
            "ins AS (INSERT INTO cowans_jobs (queue, kind, args, state, priority, run_at, max_attempts, ",
            "unique_key, unique_states, batch_id, rate_key) ",
            "SELECT queue, kind, args::jsonb, ",
            "CASE WHEN run_at IS NULL OR run_at <= now() THEN 'available' ELSE 'scheduled' END::cowans_job_state, ",
            "priority, COALESCE(run_at, now()), max_attempts, unique_key, unique_states, batch_id, rate_key FROM input ",
            $conflict,
            " RETURNING id, queue, state, priority, unique_key) ",
            $tail
        )
    };
}

// Every column of every job as an array.
macro_rules! arrays {
    () => {
        concat!(
            "WITH input AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], ",
            "$5::timestamptz[], $6::integer[], $7::text[], $8::integer[], $9::bigint[], $10::text[]) ",
            "AS t(queue, kind, args, priority, run_at, max_attempts, unique_key, unique_states, batch_id, rate_key)), "
        )
    };
}

// Jobs that differ only in their arguments (see `fn uniform`): every other column once, the
// arguments as the one array. The server unnests one array instead of ten: a 1,000-job call
// costs it ~18 % less (9.6 → 7.8 ms per call, the two forms alternating on the same table).
macro_rules! uniform {
    () => {
        concat!(
            "WITH input AS (SELECT $1::text AS queue, $2::text AS kind, a AS args, ",
            "$4::smallint AS priority, $5::timestamptz AS run_at, $6::integer AS max_attempts, ",
            "$7::text AS unique_key, $8::integer AS unique_states, $9::bigint AS batch_id, ",
            "$10::text AS rate_key FROM unnest($3::text[]) AS a), "
        )
    };
}

// Inside a transaction the wake-up must ride on the transaction (sent at commit, never on
// rollback), so it is sent by the insert statement itself. Its payloads come encoded from Rust
// (`Wakeup`), one pair per queue of the call: which one goes out depends on whether the rows
// became available or scheduled, which only the database knows (its clock decides). The notify
// CTE is joined into the result so Postgres cannot skip it. `$ch` is the channel, `$q`, `$a`,
// `$s` the queues and their "available" and "scheduled" payloads.
macro_rules! notified {
    ($ch:literal, $q:literal, $a:literal, $s:literal) => {
        concat!(
            "(SELECT count(pg_notify(",
            $ch,
            ", CASE WHEN s.state = 'available' THEN w.avail ELSE w.sched END)) AS n \
             FROM (SELECT DISTINCT queue, state FROM ins) s JOIN unnest(",
            $q,
            "::text[], ",
            $a,
            "::text[], ",
            $s,
            "::text[]) AS w(queue, avail, sched) ON w.queue = s.queue) notified"
        )
    };
}

macro_rules! notify_tail {
    ($ch:literal, $q:literal, $a:literal, $s:literal) => {
        concat!(
            "SELECT ins.id, ins.queue, ins.unique_key, NULL::text AS state FROM ins CROSS JOIN ",
            notified!($ch, $q, $a, $s),
            " ORDER BY ins.id"
        )
    };
}

// Jobs without unique keys need only their ids back, in input order: one row of arrays instead
// of a row per job (decoding a thousand rows costs the client more than the server spends
// writing them). The notifying form has no states to return.
macro_rules! packed_notify_tail {
    ($ch:literal, $q:literal, $a:literal, $s:literal) => {
        concat!(
            "SELECT ARRAY(SELECT id FROM ins ORDER BY id) AS ids, NULL::text[] AS available, \
             NULL::text[] AS scheduled FROM ",
            notified!($ch, $q, $a, $s)
        )
    };
}

// Outside a transaction the insert commits on its own and the wake-up follows as a separate
// statement: a transaction that sends NOTIFY holds Postgres' notify-queue lock through its
// commit (and its WAL flush), which would serialise every concurrent single enqueue. The insert
// returns, besides the rows, each (queue, state) it produced, for the caller to encode.
macro_rules! states_tail {
    () => {
        "SELECT id, queue, unique_key, NULL::text AS state FROM ins UNION ALL \
         SELECT NULL, queue, NULL, state::text FROM ins GROUP BY queue, state ORDER BY 1"
    };
}

// The packed form of `states_tail`: the ids in input order and the queues that got runnable and
// scheduled jobs.
macro_rules! packed_states_tail {
    () => {
        "SELECT ARRAY(SELECT id FROM ins ORDER BY id) AS ids, \
         ARRAY(SELECT DISTINCT queue FROM ins WHERE state = 'available') AS available, \
         ARRAY(SELECT DISTINCT queue FROM ins WHERE state = 'scheduled') AS scheduled"
    };
}

// The API's group commit: jobs without unique keys, their audit entries and their wake-ups in
// one autocommit statement (one round trip, atomic). Audit row n belongs to the n-th inserted
// job, which is the n-th by id.
const INSERT_AUDITED: Statement = Statement::arrays_only(insert_sql!(
    arrays!(),
    "",
    concat!(
        ", numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM ins), ",
        "aud AS (INSERT INTO cowans_audit (actor, role, action, target, client_addr, details) ",
        "SELECT a.actor, a.role, 'job.submit', 'job:' || n.id, a.client_addr, ",
        "jsonb_build_object('queue', a.queue, 'kind', a.kind, 'duplicate', false) ",
        "FROM numbered n JOIN unnest($1::text[], $2::text[], $11::text[], $12::text[], $13::text[]) ",
        "WITH ORDINALITY AS a(queue, kind, actor, role, client_addr, ord) ON a.ord = n.rn) ",
        packed_notify_tail!("$14", "$15", "$16", "$17")
    )
));
const INSERT_NOTIFY: Statement = Statement {
    arrays: insert_sql!(
        arrays!(),
        "",
        packed_notify_tail!("$11", "$12", "$13", "$14")
    ),
    uniform: Some(insert_sql!(
        uniform!(),
        "",
        packed_notify_tail!("$11", "$12", "$13", "$14")
    )),
};
const INSERT_NOTIFY_UNIQUE: Statement = Statement::arrays_only(insert_sql!(
    arrays!(),
    "ON CONFLICT DO NOTHING",
    notify_tail!("$11", "$12", "$13", "$14")
));
const INSERT_ONLY: Statement = Statement {
    arrays: insert_sql!(arrays!(), "", packed_states_tail!()),
    uniform: Some(insert_sql!(uniform!(), "", packed_states_tail!())),
};
const INSERT_ONLY_UNIQUE: Statement = Statement::arrays_only(insert_sql!(
    arrays!(),
    "ON CONFLICT DO NOTHING",
    states_tail!()
));

/// An insert statement in its two input forms: `uniform` is used when the call's jobs differ
/// only in their arguments and the statement has that form.
#[derive(Clone, Copy)]
struct Statement {
    arrays: &'static str,
    uniform: Option<&'static str>,
}

impl Statement {
    const fn arrays_only(arrays: &'static str) -> Self {
        Statement {
            arrays,
            uniform: None,
        }
    }
}

/// Whether `jobs` differ only in their arguments: one queue, kind, priority, run_at,
/// max_attempts, batch and rate key, and no unique key (the common bulk call: a thousand jobs
/// of one kind). Such a call binds those columns once.
fn uniform(jobs: &[&NewJob]) -> bool {
    let Some(first) = jobs.first() else {
        return false;
    };
    jobs.iter().all(|j| {
        j.unique.is_none()
            && j.queue == first.queue
            && j.kind == first.kind
            && j.priority == first.priority
            && j.run_at == first.run_at
            && j.max_attempts == first.max_attempts
            && j.batch_id == first.batch_id
            && j.rate_key == first.rate_key
    })
}

/// The wake-ups an insert of `jobs` may need, per queue: new runnable jobs (at the highest
/// priority of the call for that queue; higher than the truth only costs a claim from the head)
/// or new scheduled ones.
struct WakeCandidates {
    queues: Vec<String>,
    available: Vec<String>,
    scheduled: Vec<String>,
}

impl WakeCandidates {
    fn of(jobs: &[&NewJob]) -> Self {
        let mut by_queue: Vec<(&QueueName, i16)> = Vec::new();
        for j in jobs {
            match by_queue.iter_mut().find(|(q, _)| *q == &j.queue) {
                Some((_, p)) => *p = (*p).max(j.priority),
                None => by_queue.push((&j.queue, j.priority)),
            }
        }
        let mut c = WakeCandidates {
            queues: Vec::with_capacity(by_queue.len()),
            available: Vec::with_capacity(by_queue.len()),
            scheduled: Vec::with_capacity(by_queue.len()),
        };
        for (queue, priority) in by_queue {
            c.queues.push(queue.to_string());
            c.available.push(enqueued(queue, priority).encode());
            c.scheduled.push(
                Wakeup::Scheduled {
                    queue: queue.clone(),
                }
                .encode(),
            );
        }
        c
    }
}

fn enqueued(queue: &QueueName, priority: i16) -> Wakeup {
    Wakeup::Enqueued {
        queue: queue.clone(),
        priority: i32::from(priority),
    }
}

// The jobs holding the given unique keys right now.
const HOLDERS: &str = r#"
SELECT j.queue, j.unique_key, j.id FROM cowans_jobs j
JOIN unnest($1::text[], $2::text[]) AS k(queue, unique_key)
  ON j.queue = k.queue AND j.unique_key = k.unique_key
WHERE j.unique_key IS NOT NULL AND (j.unique_states & cowans_state_bit(j.state)) <> 0
"#;

/// Inserts one job. Works on a pool or inside the caller's transaction (`&mut *tx`): there the
/// job is visible, and its wake-up sent, only when the transaction commits.
pub fn enqueue<'c, A>(conn: A, job: &'c NewJob) -> BoxFuture<'c, Result<Enqueued>>
where
    A: Acquire<'c, Database = Postgres> + Send + 'c,
{
    Box::pin(async move {
        job.validate(None)?;
        let mut conn = conn.acquire().await?;
        let done = insert_resolving(&mut conn, std::slice::from_ref(job), Mode::InTx).await?;
        Ok(done.results[0])
    })
}

/// Like [`enqueue_many`] on the pool, each call its own transaction: faster under concurrency
/// because the wake-up is sent after the commit instead of inside it, and by a task of its own,
/// so the call returns when the jobs are durable (one round trip).
pub async fn enqueue_autocommit(pool: &sqlx::PgPool, jobs: &[NewJob]) -> Result<Vec<Enqueued>> {
    validate_all(jobs)?;
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = pool.acquire().await?;
    let done = insert_resolving(&mut conn, jobs, Mode::Autocommit).await?;
    let wakeups: Vec<Wakeup> = done
        .states
        .iter()
        .filter_map(|(queue, state)| {
            let queue = QueueName::new(queue.clone()).ok()?;
            Some(match state {
                JobState::Available => {
                    let top = jobs
                        .iter()
                        .filter(|j| j.queue == queue)
                        .map(|j| j.priority)
                        .max()
                        .unwrap_or(0);
                    enqueued(&queue, top)
                }
                _ => Wakeup::Scheduled { queue },
            })
        })
        .collect();
    crate::announce::after_commit_detached(conn, wakeups);
    Ok(done.results)
}

/// Inserts `jobs` with a `job.submit` audit entry each (`who[i]` submitted `jobs[i]`;
/// details: queue, kind, duplicate) atomically: a job is never accepted without its entry. Jobs
/// without unique keys take one statement (insert, audit and wake-ups together); with unique keys,
/// one transaction. How the API commits a group of concurrent single submits at once; meant for a
/// few concurrent callers with many jobs each (the wake-up holds the notify lock through the
/// commit).
pub async fn enqueue_audited(
    pool: &sqlx::PgPool,
    jobs: &[NewJob],
    who: &[Actor],
) -> Result<Vec<Enqueued>> {
    validate_all(jobs)?;
    if jobs.len() != who.len() {
        return Err(StoreError::invalid(
            "who",
            format!("has {} entries for {} jobs", who.len(), jobs.len()),
        ));
    }
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    if jobs.iter().all(|j| j.unique.is_none()) {
        let mut conn = pool.acquire().await?;
        let all: Vec<&NewJob> = jobs.iter().collect();
        let wake = WakeCandidates::of(&all);
        let packed = insert_rows(&mut conn, &all, INSERT_AUDITED, Some(who), Some(&wake)).await?;
        return Ok(unpack(packed, jobs.len())?.results);
    }
    let mut tx = pool.begin().await?;
    let done = insert_resolving(&mut tx, jobs, Mode::InTx).await?;
    let entries: Vec<crate::NewAudit> = done
        .results
        .iter()
        .zip(jobs.iter().zip(who))
        .map(|(e, (job, w))| {
            crate::NewAudit::by(
                w,
                "job.submit",
                Some(format!("job:{}", e.id)),
                serde_json::json!({
                    "queue": job.queue, "kind": job.kind, "duplicate": e.duplicate,
                }),
            )
        })
        .collect();
    crate::api::audit_many(&mut tx, &entries).await?;
    tx.commit().await?;
    Ok(done.results)
}

/// Inserts many jobs in one statement and returns a result per job, in input order.
pub fn enqueue_many<'c, A>(conn: A, jobs: &'c [NewJob]) -> BoxFuture<'c, Result<Vec<Enqueued>>>
where
    A: Acquire<'c, Database = Postgres> + Send + 'c,
{
    Box::pin(async move {
        validate_all(jobs)?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = conn.acquire().await?;
        Ok(insert_resolving(&mut conn, jobs, Mode::InTx).await?.results)
    })
}

/// Errors name the item (`jobs[3].kind`) so a caller can find it in its batch.
pub fn validate_all(jobs: &[NewJob]) -> Result<()> {
    jobs.iter()
        .enumerate()
        .try_for_each(|(i, job)| job.validate(Some(i)).map_err(StoreError::from))
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// NOTIFY inside the statement (it rides on the caller's transaction).
    InTx,
    /// The (queue, state) pairs inserted are returned for the caller to wake after the commit.
    Autocommit,
}

struct Inserted {
    results: Vec<Enqueued>,
    /// Autocommit only: each (queue, state) the insert produced.
    states: Vec<(String, JobState)>,
}

type Row = (Option<i64>, Option<String>, Option<String>, Option<String>);

/// Inserts `jobs` and answers for each: its new id, or the id of the job holding its unique key.
/// If a key's holder finished between the insert and the lookup, that job is inserted again
/// (bounded), so every job gets an answer.
async fn insert_resolving(
    conn: &mut PgConnection,
    jobs: &[NewJob],
    mode: Mode,
) -> Result<Inserted> {
    if jobs.iter().all(|j| j.unique.is_none()) {
        let all: Vec<&NewJob> = jobs.iter().collect();
        let packed = match mode {
            Mode::InTx => {
                let wake = WakeCandidates::of(&all);
                insert_rows(&mut *conn, &all, INSERT_NOTIFY, None, Some(&wake)).await?
            }
            Mode::Autocommit => insert_rows(&mut *conn, &all, INSERT_ONLY, None, None).await?,
        };
        return unpack(packed, jobs.len());
    }
    let mut results: Vec<Option<Enqueued>> = vec![None; jobs.len()];
    let mut states = Vec::new();
    let mut todo: Vec<usize> = (0..jobs.len()).collect();
    for _round in 0..5 {
        let batch: Vec<&NewJob> = todo.iter().map(|&i| &jobs[i]).collect();
        // Every round has a unique key (plain calls took the packed path above; later rounds
        // retry only keyed jobs).
        let sql = match mode {
            Mode::InTx => INSERT_NOTIFY_UNIQUE,
            Mode::Autocommit => INSERT_ONLY_UNIQUE,
        };
        let wake = (mode == Mode::InTx).then(|| WakeCandidates::of(&batch));
        let rows: Vec<Row> = insert_rows(&mut *conn, &batch, sql, None, wake.as_ref()).await?;
        let mut inserted = Vec::with_capacity(rows.len());
        for (id, queue, key, state) in rows {
            match (id, queue, state.as_deref().and_then(JobState::parse)) {
                (Some(id), queue, _) => inserted.push((id, queue.unwrap_or_default(), key)),
                (None, Some(queue), Some(state)) => states.push((queue, state)),
                _ => {}
            }
        }
        // Inserted rows come back in input order; a job with a unique key that is not next in
        // that order was a duplicate (of an existing job or of an earlier job of this call).
        let mut next = inserted.into_iter().peekable();
        let mut mine: HashMap<(&str, &str), JobId> = HashMap::new();
        let mut pending = Vec::new();
        for &i in &todo {
            let job = &jobs[i];
            let Some(u) = &job.unique else {
                let (id, ..) = next.next().ok_or_else(missing_row)?;
                results[i] = Some(Enqueued {
                    id: JobId(id),
                    duplicate: false,
                });
                continue;
            };
            let key = (job.queue.as_str(), u.key.as_str());
            if let Some(id) = mine.get(&key) {
                results[i] = Some(Enqueued {
                    id: *id,
                    duplicate: true,
                });
            } else if next
                .peek()
                .is_some_and(|(_, q, k)| q == key.0 && k.as_deref() == Some(key.1))
            {
                let (id, ..) = next.next().ok_or_else(missing_row)?;
                mine.insert(key, JobId(id));
                results[i] = Some(Enqueued {
                    id: JobId(id),
                    duplicate: false,
                });
            } else {
                pending.push(i);
            }
        }
        if pending.is_empty() {
            break;
        }
        let (queues, keys): (Vec<&str>, Vec<&str>) = pending
            .iter()
            .filter_map(|&i| {
                Some((
                    jobs[i].queue.as_str(),
                    jobs[i].unique.as_ref()?.key.as_str(),
                ))
            })
            .unzip();
        let holders: Vec<(String, String, i64)> = sqlx::query_as(HOLDERS)
            .bind(queues)
            .bind(keys)
            .fetch_all(&mut *conn)
            .await?;
        let holders: HashMap<(&str, &str), i64> = holders
            .iter()
            .map(|(q, k, id)| ((q.as_str(), k.as_str()), *id))
            .collect();
        todo.clear();
        for i in pending {
            let key = (
                jobs[i].queue.as_str(),
                jobs[i].unique.as_ref().map_or("", |u| u.key.as_str()),
            );
            match holders.get(&key) {
                Some(id) => {
                    results[i] = Some(Enqueued {
                        id: JobId(*id),
                        duplicate: true,
                    })
                }
                // The holder finished meanwhile: the key is free, insert again.
                None => todo.push(i),
            }
        }
        if todo.is_empty() {
            break;
        }
    }
    let results = results
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            StoreError::invalid("unique.key", "the key kept changing hands; try again")
        })?;
    Ok(Inserted { results, states })
}

fn missing_row() -> StoreError {
    StoreError::invalid("jobs", "the insert returned fewer rows than jobs")
}

/// The one row of a packed statement: ids in input order, and (autocommit only) the queues
/// that got runnable and scheduled jobs.
type Packed = (Vec<i64>, Option<Vec<String>>, Option<Vec<String>>);

fn unpack(rows: Vec<Packed>, expected: usize) -> Result<Inserted> {
    let (ids, available, scheduled) = rows.into_iter().next().ok_or_else(missing_row)?;
    if ids.len() != expected {
        return Err(missing_row());
    }
    let results = ids
        .into_iter()
        .map(|id| Enqueued {
            id: JobId(id),
            duplicate: false,
        })
        .collect();
    let states = available
        .into_iter()
        .flatten()
        .map(|q| (q, JobState::Available))
        .chain(
            scheduled
                .into_iter()
                .flatten()
                .map(|q| (q, JobState::Scheduled)),
        )
        .collect();
    Ok(Inserted { results, states })
}

/// Binds the jobs ($1..$10: as arrays, or in the uniform form each column once and the
/// arguments as an array), for [`INSERT_AUDITED`] their submitters ($11..$13), and for the
/// statements that notify, the channel and the wake-up candidates.
async fn insert_rows<O>(
    conn: &mut PgConnection,
    jobs: &[&NewJob],
    statement: Statement,
    who: Option<&[Actor]>,
    wake: Option<&WakeCandidates>,
) -> Result<Vec<O>>
where
    O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let args: Vec<String> = jobs.iter().map(|j| j.args.to_string()).collect();
    let mut query = match (statement.uniform, jobs.first()) {
        (Some(sql), Some(first)) if uniform(jobs) => sqlx::query_as(sql)
            .bind(first.queue.as_str())
            .bind(first.kind.as_str())
            .bind(args)
            .bind(first.priority)
            .bind(first.run_at)
            .bind(first.max_attempts)
            .bind(None::<&str>)
            .bind(None::<i32>)
            .bind(first.batch_id)
            .bind(first.rate_key.as_deref()),
        _ => {
            let col =
                |f: fn(&NewJob) -> Option<&str>| jobs.iter().map(|j| f(j)).collect::<Vec<_>>();
            sqlx::query_as(statement.arrays)
                .bind(col(|j| Some(j.queue.as_str())))
                .bind(col(|j| Some(j.kind.as_str())))
                .bind(args)
                .bind(jobs.iter().map(|j| j.priority).collect::<Vec<_>>())
                .bind(jobs.iter().map(|j| j.run_at).collect::<Vec<_>>())
                .bind(jobs.iter().map(|j| j.max_attempts).collect::<Vec<_>>())
                .bind(col(|j| j.unique.as_ref().map(|u| u.key.as_str())))
                .bind(
                    jobs.iter()
                        .map(|j| j.unique.as_ref().map(crate::Unique::mask))
                        .collect::<Vec<_>>(),
                )
                .bind(jobs.iter().map(|j| j.batch_id).collect::<Vec<_>>())
                .bind(col(|j| j.rate_key.as_deref()))
        }
    };
    if let Some(who) = who {
        let col = |f: fn(&Actor) -> Option<&str>| who.iter().map(f).collect::<Vec<_>>();
        query = query
            .bind(col(|w| Some(&w.name)))
            .bind(col(|w| Some(w.role.as_str())))
            .bind(col(|w| w.client_addr.as_deref()));
    }
    if let Some(w) = wake {
        query = query
            .bind(WAKEUP_CHANNEL)
            .bind(&w.queues)
            .bind(&w.available)
            .bind(&w.scheduled);
    }
    Ok(query.fetch_all(&mut *conn).await?)
}
