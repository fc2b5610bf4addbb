import { attributeValuesEqual, validationError, type Item } from '@shoal/model';

export const RETURN_VALUES = ['ALL_NEW', 'UPDATED_OLD', 'ALL_OLD', 'NONE', 'UPDATED_NEW'] as const;
export type ReturnValues = (typeof RETURN_VALUES)[number];

export const RETURN_VALUES_ON_CONDITION_CHECK_FAILURE = ['ALL_OLD', 'NONE'] as const;

/** PutItem and DeleteItem know only the old image; call after the enum constraint passed. */
export function checkOnlyOldReturned(mode: string | undefined): void {
  if (mode !== undefined && mode !== 'NONE' && mode !== 'ALL_OLD') {
    throw validationError('ReturnValues can only be ALL_OLD or NONE');
  }
}

/**
 * The part of `from` that differs from `other`: changed top-level attributes, and inside maps present
 * in both, only the changed members — what DynamoDB returns for SET a.b = :v.
 */
function changedAttributes(from: Item, other: Item): Item {
  const changed: Item = {};
  for (const [name, value] of Object.entries(from)) {
    const counterpart = other[name];
    if (counterpart === undefined) {
      changed[name] = value;
    } else if (!attributeValuesEqual(value, counterpart)) {
      changed[name] = 'M' in value && 'M' in counterpart ? { M: changedAttributes(value.M, counterpart.M) } : value;
    }
  }
  return changed;
}

/** The `Attributes` of a write's response, or undefined when there is nothing to return. */
export function returnedAttributes(mode: ReturnValues, oldItem: Item | undefined, newItem: Item | undefined): Item | undefined {
  let attributes: Item | undefined;
  switch (mode) {
    case 'NONE':
      return undefined;
    case 'ALL_OLD':
      attributes = oldItem;
      break;
    case 'ALL_NEW':
      attributes = newItem;
      break;
    case 'UPDATED_OLD':
      attributes = oldItem && changedAttributes(oldItem, newItem ?? {});
      break;
    case 'UPDATED_NEW':
      attributes = newItem && changedAttributes(newItem, oldItem ?? {});
      break;
  }
  return attributes && Object.keys(attributes).length > 0 ? attributes : undefined;
}
