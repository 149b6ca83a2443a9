//! Dispatch by job kind, for queues that carry several kinds: the worker consumes
//! `serde_json::Value` payloads and the router decodes each into its kind's type.

use std::{
    collections::HashMap,
    sync::Arc,
    task::{Context, Poll},
};

use apalis_core::{error::BoxDynError, task::Task};
use cowans_core::JobError;
use futures::{FutureExt, future::BoxFuture};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::{Service, ServiceExt, util::BoxCloneSyncService};

use crate::JobMeta;

pub(crate) type Route = BoxCloneSyncService<Task<Value>, (), BoxDynError>;

/// `service` as a route of kind `kind`: decodes the payload into `T` first (a payload that does
/// not decode fails permanently, naming the kind and the decode error).
pub(crate) fn route_of<T, S>(kind: &str, service: S) -> Route
where
    T: DeserializeOwned + Send + 'static,
    S: Service<Task<T>> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxDynError>,
    S::Future: Send + 'static,
{
    let kind_name = kind.to_owned();
    let route = tower::service_fn(move |task: Task<Value>| {
        let svc = service.clone();
        let kind_name = kind_name.clone();
        async move {
            let task = task
                .try_map_args(serde_json::from_value::<T>)
                .map_err(|e| {
                    JobError::permanent(format!("payload of kind {kind_name} does not decode: {e}"))
                })?;
            svc.oneshot(task).await.map(|_| ()).map_err(Into::into)
        }
    });
    BoxCloneSyncService::new(route)
}

/// Routes each task to the apalis service registered for its kind. Handlers keep apalis'
/// extractors (`Data<T>`, `WorkerContext`, [`JobMeta`], ...). An unknown kind, or a payload that
/// does not decode into the kind's type, fails permanently: straight to the dead-letter set.
#[derive(Clone, Default)]
pub struct KindRouter {
    routes: Arc<HashMap<String, Route>>,
}

impl KindRouter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `service` (e.g. `apalis::prelude::task_fn(handler)`) for `kind`. Applications
    /// register kinds as [`crate::JobKind`]s instead, and get their router from the
    /// [`crate::JobSet`].
    pub fn route<T, S>(self, kind: &str, service: S) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        S: Service<Task<T>> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxDynError>,
        S::Future: Send + 'static,
    {
        self.insert(kind, route_of::<T, S>(kind, service))
    }

    pub(crate) fn insert(mut self, kind: &str, route: Route) -> Self {
        Arc::make_mut(&mut self.routes).insert(kind.to_owned(), route);
        self
    }

    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }
}

impl Service<Task<Value>> for KindRouter {
    type Response = ();
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<(), BoxDynError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, task: Task<Value>) -> Self::Future {
        let kind = task.data().get::<JobMeta>().map(|m| m.kind.clone());
        let route = kind.as_deref().and_then(|k| self.routes.get(k)).cloned();
        match (route, kind) {
            (Some(route), _) => route.oneshot(task).boxed(),
            (None, kind) => {
                let kind = kind.as_deref().unwrap_or("<none>").to_owned();
                async move {
                    Err(
                        JobError::permanent(format!("no handler is registered for kind {kind}"))
                            .into(),
                    )
                }
                .boxed()
            }
        }
    }
}
