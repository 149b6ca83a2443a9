//! userErrors: the plain `UserError { field message }` and the typed ones
//! (`ProductSetUserError`, `ProductVariantsBulkUpdateUserError`,
//! `InventorySetQuantitiesUserError`, `BulkOperationUserError`) whose `code` is an enum.

use async_graphql::{EnumType, OutputType};

use super::*;

/// `UserError`: what most mutations return (no `code`).
#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct UserError {
    pub(crate) field: Option<Vec<String>>,
    pub(crate) message: String,
}

pub(crate) fn user_error(field: &[&str], message: impl Into<String>) -> UserError {
    UserError {
        field: Some(field.iter().map(|s| (*s).to_owned()).collect()),
        message: message.into(),
    }
}

/// A userError with an enum `code`.
#[derive(SimpleObject, Clone, Debug, PartialEq)]
#[graphql(concrete(name = "ProductSetUserError", params(ProductSetUserErrorCode)))]
#[graphql(concrete(
    name = "ProductVariantsBulkUpdateUserError",
    params(ProductVariantsBulkUpdateUserErrorCode)
))]
#[graphql(concrete(
    name = "InventorySetQuantitiesUserError",
    params(InventorySetQuantitiesUserErrorCode)
))]
#[graphql(concrete(name = "BulkOperationUserError", params(BulkOperationUserErrorCode)))]
pub struct CodedError<C: OutputType> {
    pub(crate) code: Option<C>,
    pub(crate) field: Option<Vec<String>>,
    pub(crate) message: String,
}

pub(crate) fn coded<C: OutputType>(
    field: &[&str],
    message: impl Into<String>,
    code: C,
) -> CodedError<C> {
    CodedError {
        code: Some(code),
        field: Some(field.iter().map(|s| (*s).to_owned()).collect()),
        message: message.into(),
    }
}

/// The enum value named `name`, if the enum has one.
pub(crate) fn enum_value<C: EnumType + Copy>(name: &str) -> Option<C> {
    C::items().iter().find(|i| i.name == name).map(|i| i.value)
}

/// The forced userError of `mutation` (`/__sim/faults`), typed: an unknown code reads as
/// `fallback`.
pub(crate) fn forced_coded<C: OutputType + EnumType + Copy>(
    state: &ShopState,
    mutation: &str,
    fallback: C,
) -> Option<Vec<CodedError<C>>> {
    state.forced_user_error(mutation).map(|f| {
        vec![CodedError {
            code: Some(
                f.code
                    .as_deref()
                    .and_then(enum_value::<C>)
                    .unwrap_or(fallback),
            ),
            field: Some(f.field),
            message: f.message,
        }]
    })
}

/// The forced userError of `mutation` as a plain `UserError`.
pub(crate) fn forced(state: &ShopState, mutation: &str) -> Option<Vec<UserError>> {
    state.forced_user_error(mutation).map(|f| {
        vec![UserError {
            field: Some(f.field),
            message: f.message,
        }]
    })
}

/// `ProductSetUserErrorCode` (2026-01 reference list, with `VARIANTS_OVER_LIMIT`).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ProductSetUserErrorCode {
    CannotCombineLinkedAndNonlinkedOptionValues,
    CapabilityViolation,
    DuplicateLinkedOption,
    DuplicatedMetafieldValue,
    DuplicatedOptionName,
    DuplicatedOptionValue,
    DuplicatedValue,
    GenericError,
    GiftCardAttributeCannotBeChanged,
    GiftCardsNotActivated,
    HandleNotUnique,
    IdNotAllowed,
    InputMismatch,
    InvalidInput,
    InvalidMetafield,
    InvalidMetafieldValueForLinkedOption,
    InvalidProduct,
    InvalidVariant,
    InventoryQuantitiesLimitExceeded,
    JobError,
    LinkedMetafieldDefinitionNotFound,
    LinkedOptionsNotSupportedForShop,
    MetafieldMismatch,
    MissingFieldRequired,
    NotFound,
    OptionDoesNotExist,
    OptionValueDoesNotExist,
    OptionValuesMissing,
    OptionValuesOverLimit,
    OptionsOverLimit,
    ProductDoesNotExist,
    ProductOptionsInputMissing,
    ProductSuspended,
    ProductVariantDoesNotExist,
    VariantsInputMissing,
    VariantsOverLimit,
}

/// `ProductVariantsBulkUpdateUserErrorCode` (the values the reference lists).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ProductVariantsBulkUpdateUserErrorCode {
    CannotSpecifyBoth,
    GreaterThanOrEqualTo,
    InvalidInput,
    MustBeForThisProduct,
    MustSpecifyOneOfPair,
    NeedToAddOptionValues,
    NegativePriceValue,
    NoInventoryQuantitesDuringUpdate,
    NoInventoryQuantitiesOnVariantsUpdate,
    OptionDoesNotExist,
    OptionValueDoesNotExist,
    OptionValuesForNumberOfUnknownOptions,
    ProductDoesNotExist,
    ProductSuspended,
    ProductVariantDoesNotExist,
    ProductVariantIdMissing,
    SubscriptionViolation,
    VariantAlreadyExists,
}

/// `InventorySetQuantitiesUserErrorCode` (2026-10).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum InventorySetQuantitiesUserErrorCode {
    ChangeFromQuantityStale,
    CompareQuantityRequired,
    CompareQuantityStale,
    IdempotencyConcurrentRequest,
    IdempotencyKeyParameterMismatch,
    IdempotencyPreviousAttemptFailed,
    InvalidInventoryItem,
    InvalidLocation,
    InvalidName,
    InvalidQuantityNegative,
    InvalidQuantityTooHigh,
    InvalidQuantityTooLow,
    InvalidReason,
    InvalidReferenceDocument,
    ItemNotStockedAtLocation,
    NoDuplicateInventoryItemIdGroupIdPair,
    NonMutableInventoryItem,
}

/// `BulkOperationUserErrorCode` (2026-10).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum BulkOperationUserErrorCode {
    Invalid,
    LimitReached,
    OperationInProgress,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_as_shopify_names_them() {
        let names: Vec<&str> = ProductSetUserErrorCode::items()
            .iter()
            .map(|i| i.name)
            .collect();
        for n in [
            "CANNOT_COMBINE_LINKED_AND_NONLINKED_OPTION_VALUES",
            "ID_NOT_ALLOWED",
            "OPTION_VALUES_OVER_LIMIT",
            "PRODUCT_OPTIONS_INPUT_MISSING",
            "VARIANTS_OVER_LIMIT",
        ] {
            assert!(names.contains(&n), "{n} in {names:?}");
        }
        assert_eq!(
            enum_value::<InventorySetQuantitiesUserErrorCode>(
                "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR"
            ),
            Some(InventorySetQuantitiesUserErrorCode::NoDuplicateInventoryItemIdGroupIdPair)
        );
        assert_eq!(
            enum_value::<ProductVariantsBulkUpdateUserErrorCode>(
                "NO_INVENTORY_QUANTITES_DURING_UPDATE"
            ),
            Some(ProductVariantsBulkUpdateUserErrorCode::NoInventoryQuantitesDuringUpdate)
        );
    }
}
