import { projectItem, validationError, type DocumentPath, type Item } from '@shoal/model';

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
 * The `Attributes` of a write's response, or undefined when there is nothing to return. UPDATED_OLD
 * and UPDATED_NEW return the document paths the update expression wrote or removed, as they were
 * before and are after: `SET m.y = :v` returns `{ m: { y } }`, not all of `m`.
 */
export function returnedAttributes(
  mode: ReturnValues,
  oldItem: Item | undefined,
  newItem: Item | undefined,
  updatedPaths: readonly DocumentPath[] = [],
): Item | undefined {
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
      attributes = oldItem && projectItem(oldItem, updatedPaths);
      break;
    case 'UPDATED_NEW':
      attributes = newItem && projectItem(newItem, updatedPaths);
      break;
  }
  return attributes && Object.keys(attributes).length > 0 ? attributes : undefined;
}
