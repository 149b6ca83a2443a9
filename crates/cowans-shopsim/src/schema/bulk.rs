//! Staged uploads and bulk operations (query exports and mutation imports).

use super::*;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
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

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct BulkOperation {
    pub(crate) id: ID,
    pub(crate) status: String,
    pub(crate) error_code: Option<String>,
    pub(crate) object_count: String,
    pub(crate) root_object_count: String,
    pub(crate) file_size: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) partial_data_url: Option<String>,
    pub(crate) created_at: String,
    pub(crate) completed_at: Option<String>,
    #[graphql(name = "type")]
    pub(crate) kind: String,
    pub(crate) query: String,
}

impl BulkOperation {
    pub(crate) fn of(op: &crate::bulk::BulkOp, base: &str) -> Self {
        let ts =
            |d: chrono::DateTime<chrono::Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        Self {
            id: gid("BulkOperation", op.id),
            status: op.status.name().to_owned(),
            error_code: op.error_code.clone(),
            object_count: op.object_count.to_string(),
            root_object_count: op.root_object_count.to_string(),
            file_size: op.file.as_ref().map(|_| op.file_size.to_string()),
            url: op
                .file
                .as_ref()
                .map(|_| format!("{base}/bulk-results/{}.jsonl", op.id)),
            partial_data_url: None,
            created_at: ts(op.created_at),
            completed_at: op.completed_at.map(ts),
            kind: op.kind.to_owned(),
            query: op.query.clone(),
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum StagedUploadTargetGenerateUploadResource {
    BulkMutationVariables,
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct StagedUploadInput {
    pub(crate) resource: StagedUploadTargetGenerateUploadResource,
    pub(crate) filename: String,
    pub(crate) mime_type: String,
    pub(crate) http_method: Option<String>,
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
    pub(crate) user_errors: Vec<UserError>,
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
            return Ok(fail(user_error(
                &["mutation"],
                "The mutation must be a single mutation operation",
                "INVALID_MUTATION",
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
                return Ok(fail(user_error(
                    &["stagedUploadPath"],
                    "The staged upload was not found",
                    "NO_SUCH_FILE",
                )));
            };
            let live = s
                .bulk
                .values()
                .filter(|o| o.kind == "MUTATION" && o.status.is_live())
                .count();
            if live >= s.bulk_concurrency {
                return Ok(fail(UserError {
                    field: None,
                    message:
                        "A bulk mutation operation for this app and shop is already in progress."
                            .into(),
                    code: Some("OPERATION_IN_PROGRESS".into()),
                }));
            }
            let op = s.new_bulk_op("MUTATION", mutation.clone());
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
            Err(message) => return Ok(fail(user_error(&["query"], message, "INVALID"))),
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
                return Ok(fail(UserError {
                    field: None,
                    message: format!(
                        "A bulk query operation for this app and shop is already in progress ({live} running, at most {}).",
                        s.bulk_concurrency
                    ),
                    code: Some("OPERATION_IN_PROGRESS".into()),
                }));
            }
            let op = s.new_bulk_op("QUERY", query);
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
                user_errors: vec![user_error(
                    &["id"],
                    "Bulk operation does not exist",
                    "NOT_FOUND",
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
                user_errors: vec![user_error(&["id"], msg, "INVALID")],
            });
        }
        op.status = crate::bulk::BulkStatus::Canceling;
        Ok(BulkOperationPayload {
            bulk_operation: Some(BulkOperation::of(op, &base)),
            user_errors: vec![],
        })
    }
}
