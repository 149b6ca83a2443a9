//! Staged uploads and bulk operations (query exports and mutation imports).

use super::*;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum BulkOperationType {
    Query,
    Mutation,
}

impl BulkOperationType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            BulkOperationType::Query => "QUERY",
            BulkOperationType::Mutation => "MUTATION",
        }
    }
}

/// `BulkOperationStatus`.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum BulkOperationStatus {
    Canceled,
    Canceling,
    Completed,
    Created,
    Expired,
    Failed,
    Running,
}

/// `BulkOperationErrorCode`.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum BulkOperationErrorCode {
    AccessDenied,
    InternalServerError,
    Timeout,
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct BulkOperation {
    pub(crate) id: ID,
    pub(crate) status: BulkOperationStatus,
    pub(crate) error_code: Option<BulkOperationErrorCode>,
    pub(crate) object_count: UnsignedInt64,
    pub(crate) root_object_count: UnsignedInt64,
    pub(crate) file_size: Option<UnsignedInt64>,
    pub(crate) url: Option<Url>,
    pub(crate) partial_data_url: Option<Url>,
    pub(crate) created_at: DateTime,
    pub(crate) completed_at: Option<DateTime>,
    #[graphql(name = "type")]
    pub(crate) kind: BulkOperationType,
    pub(crate) query: String,
}

impl BulkOperation {
    pub(crate) fn of(op: &crate::bulk::BulkOp, base: &str) -> Self {
        Self {
            id: gid("BulkOperation", op.id),
            status: enum_value(op.status.name()).unwrap_or(BulkOperationStatus::Failed),
            error_code: op.error_code.as_deref().and_then(enum_value),
            object_count: UnsignedInt64(op.object_count),
            root_object_count: UnsignedInt64(op.root_object_count),
            file_size: op.file.as_ref().map(|_| UnsignedInt64(op.file_size)),
            url: op
                .file
                .as_ref()
                .map(|_| Url(format!("{base}/bulk-results/{}.jsonl", op.id))),
            partial_data_url: None,
            created_at: DateTime::of(op.created_at),
            completed_at: op.completed_at.map(DateTime::of),
            kind: if op.kind == "MUTATION" {
                BulkOperationType::Mutation
            } else {
                BulkOperationType::Query
            },
            query: op.query.clone(),
        }
    }
}

#[derive(Default)]
pub struct BulkQueries;

#[Object]
impl BulkQueries {
    async fn bulk_operation(&self, ctx: &Context<'_>, id: ID) -> Result<Option<BulkOperation>> {
        let id = parse_gid(&id, "BulkOperation")?;
        let shop = ctx.data::<Shop>()?;
        let s = shop.lock();
        Ok(s.bulk.get(&id).map(|op| BulkOperation::of(op, &s.base_url)))
    }

    /// The newest bulk operation of this type (being deprecated since 2026-01).
    async fn current_bulk_operation(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type", default_with = "Some(BulkOperationType::Query)")] kind: Option<
            BulkOperationType,
        >,
    ) -> Result<Option<BulkOperation>> {
        let shop = ctx.data::<Shop>()?;
        let s = shop.lock();
        let name = kind.unwrap_or(BulkOperationType::Query).name();
        Ok(s.bulk
            .values()
            .rev()
            .find(|op| op.kind == name)
            .map(|op| BulkOperation::of(op, &s.base_url)))
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum StagedUploadTargetGenerateUploadResource {
    BulkMutationVariables,
}

/// `StagedUploadHttpMethodType`.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "StagedUploadHttpMethodType")]
pub enum StagedUploadHttpMethod {
    Post,
    Put,
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct StagedUploadInput {
    pub(crate) resource: StagedUploadTargetGenerateUploadResource,
    pub(crate) filename: String,
    pub(crate) mime_type: String,
    pub(crate) http_method: Option<StagedUploadHttpMethod>,
}

#[derive(SimpleObject)]
pub struct StagedUploadParameter {
    pub(crate) name: String,
    pub(crate) value: String,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct StagedMediaUploadTarget {
    pub(crate) url: String,
    pub(crate) resource_url: Option<String>,
    pub(crate) parameters: Vec<StagedUploadParameter>,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct StagedUploadsCreatePayload {
    pub(crate) staged_targets: Vec<StagedMediaUploadTarget>,
    pub(crate) user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct BulkOperationPayload {
    pub(crate) bulk_operation: Option<BulkOperation>,
    pub(crate) user_errors: Vec<CodedError<BulkOperationUserErrorCode>>,
}

#[derive(Default)]
pub struct BulkMutations;

#[Object]
impl BulkMutations {
    /// Upload targets: POST a multipart form with every parameter, then the `file` part last.
    async fn staged_uploads_create(
        &self,
        ctx: &Context<'_>,
        input: Vec<StagedUploadInput>,
    ) -> Result<StagedUploadsCreatePayload> {
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        if input.len() > MAX_INPUT_ARRAY {
            return Err(too_many(input.len()));
        }
        let base = s.base_url.clone();
        let targets = input
            .into_iter()
            .map(|i| {
                let _ = (i.resource, i.mime_type, i.http_method);
                let key = format!("tmp/bulk/{}/{}", s.catalog.next_id(), i.filename);
                StagedMediaUploadTarget {
                    url: format!("{base}/staged-uploads"),
                    resource_url: None,
                    parameters: vec![
                        StagedUploadParameter {
                            name: "key".into(),
                            value: key,
                        },
                        StagedUploadParameter {
                            name: "Content-Type".into(),
                            value: "text/jsonl".into(),
                        },
                        StagedUploadParameter {
                            name: "success_action_status".into(),
                            value: "201".into(),
                        },
                    ],
                }
            })
            .collect();
        Ok(StagedUploadsCreatePayload {
            staged_targets: targets,
            user_errors: vec![],
        })
    }

    /// Runs `mutation` once per line of the staged JSONL at `stagedUploadPath`.
    async fn bulk_operation_run_mutation(
        &self,
        ctx: &Context<'_>,
        mutation: String,
        staged_upload_path: String,
    ) -> Result<BulkOperationPayload> {
        let fail = |e| BulkOperationPayload {
            bulk_operation: None,
            user_errors: vec![e],
        };
        if !crate::bulk::is_mutation(&mutation) {
            return Ok(fail(coded(
                &["mutation"],
                "The mutation must be a single mutation operation",
                BulkOperationUserErrorCode::Invalid,
            )));
        }
        let shop = ctx.data::<Shop>()?.clone();
        let schema = ctx
            .data::<SchemaSlot>()?
            .0
            .get()
            .cloned()
            .ok_or_else(|| Error::new("schema not ready"))?;
        let (id, dir, input, op) = {
            let mut s = shop.lock();
            let Some(input) = s.staged.get(&staged_upload_path).cloned() else {
                return Ok(fail(coded(
                    &["stagedUploadPath"],
                    "The staged upload was not found",
                    BulkOperationUserErrorCode::Invalid,
                )));
            };
            let live = s
                .bulk
                .values()
                .filter(|o| o.kind == "MUTATION" && o.status.is_live())
                .count();
            if live >= s.bulk_concurrency {
                return Ok(fail(CodedError {
                    field: None,
                    message:
                        "A bulk mutation operation for this app and shop is already in progress."
                            .into(),
                    code: Some(BulkOperationUserErrorCode::OperationInProgress),
                }));
            }
            let op = s.new_bulk_op(
                "MUTATION",
                mutation.clone(),
                crate::server::served_version(version(ctx)),
            );
            let id = op.id;
            (
                id,
                s.results_dir.clone(),
                input,
                BulkOperation::of(&op, &s.base_url),
            )
        };
        crate::bulk::spawn_mutation(shop, schema, id, mutation, input, dir);
        Ok(BulkOperationPayload {
            bulk_operation: Some(op),
            user_errors: vec![],
        })
    }

    /// Starts a bulk query; poll `bulkOperation(id)` until COMPLETED, then download `url`.
    async fn bulk_operation_run_query(
        &self,
        ctx: &Context<'_>,
        query: String,
        #[graphql(default = false)] group_objects: bool,
    ) -> Result<BulkOperationPayload> {
        let fail = |e| BulkOperationPayload {
            bulk_operation: None,
            user_errors: vec![e],
        };
        let sel = match crate::bulk::parse_selection(&query) {
            Ok(s) => s,
            Err(message) => {
                return Ok(fail(coded(
                    &["query"],
                    message,
                    BulkOperationUserErrorCode::Invalid,
                )));
            }
        };
        let shop = ctx.data::<Shop>()?.clone();
        let schema = ctx
            .data::<SchemaSlot>()?
            .0
            .get()
            .cloned()
            .ok_or_else(|| Error::new("schema not ready"))?;
        let (id, dir, op) = {
            let mut s = shop.lock();
            let live = s
                .bulk
                .values()
                .filter(|o| o.kind == "QUERY" && o.status.is_live())
                .count();
            if live >= s.bulk_concurrency {
                return Ok(fail(CodedError {
                    field: None,
                    message: format!(
                        "A bulk query operation for this app and shop is already in progress ({live} running, at most {}).",
                        s.bulk_concurrency
                    ),
                    code: Some(BulkOperationUserErrorCode::OperationInProgress),
                }));
            }
            let op = s.new_bulk_op("QUERY", query, crate::server::served_version(version(ctx)));
            let id = op.id;
            (
                id,
                s.results_dir.clone(),
                BulkOperation::of(&op, &s.base_url),
            )
        };
        crate::bulk::spawn_query(shop, schema, id, sel, dir, group_objects);
        Ok(BulkOperationPayload {
            bulk_operation: Some(op),
            user_errors: vec![],
        })
    }

    async fn bulk_operation_cancel(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<BulkOperationPayload> {
        let id = parse_gid(&id, "BulkOperation")?;
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        let base = s.base_url.clone();
        let Some(op) = s.bulk.get_mut(&id) else {
            return Ok(BulkOperationPayload {
                bulk_operation: None,
                user_errors: vec![coded(
                    &["id"],
                    "Bulk operation does not exist",
                    BulkOperationUserErrorCode::Invalid,
                )],
            });
        };
        if !op.status.is_live() {
            let msg = format!(
                "A bulk operation cannot be canceled when it is {}",
                op.status.name().to_lowercase()
            );
            return Ok(BulkOperationPayload {
                bulk_operation: Some(BulkOperation::of(op, &base)),
                user_errors: vec![coded(&["id"], msg, BulkOperationUserErrorCode::Invalid)],
            });
        }
        op.status = crate::bulk::BulkStatus::Canceling;
        Ok(BulkOperationPayload {
            bulk_operation: Some(BulkOperation::of(op, &base)),
            user_errors: vec![],
        })
    }
}
