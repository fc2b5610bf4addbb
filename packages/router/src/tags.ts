import { resourceNotFound, validationError } from '@shoal/model';
import type { TableRecord } from '@shoal/model';
import type { EngineContext } from './operation.ts';
import { Constraints, optionalString, optionalStringList, optionalStructList } from './request.ts';
import type { RequestBody, RouterOperationHandler } from './request.ts';

/** TagResource, UntagResource, ListTagsOfResource: tags on tables, addressed by table ARN. */

const MAX_TAGS_PER_RESOURCE = 50;
/** DynamoDB's tag key and value pattern: letters, digits, white space and `_ . : / = + - @`. */
const TAG_PATTERN = '[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*';

/**
 * Reads a `Tags` list (CreateTable, TagResource) into a map. Constraint violations go to
 * `constraints`; a repeated key keeps its last value, as DynamoDB does.
 */
export function parseTags(body: RequestBody, constraints: Constraints, required: boolean): Record<string, string> | undefined {
  const list = optionalStructList(body, 'Tags');
  if (required && !constraints.notNull('tags', list)) return undefined;
  if (list === undefined) return undefined;
  const tags: Record<string, string> = {};
  list.forEach((element, index) => {
    const key = optionalString(element, 'Key');
    const value = optionalString(element, 'Value');
    const path = `tags.${index + 1}.member`;
    if (constraints.notNull(`${path}.key`, key)) {
      constraints.length(`${path}.key`, key, 1, 128);
      constraints.pattern(`${path}.key`, key, TAG_PATTERN);
    }
    if (constraints.notNull(`${path}.value`, value)) {
      constraints.length(`${path}.value`, value, 0, 256);
      constraints.pattern(`${path}.value`, value, TAG_PATTERN);
    }
    if (key !== undefined && value !== undefined) tags[key] = value;
  });
  return tags;
}

function checkReservedKeys(keys: string[]): void {
  if (keys.some((key) => key.startsWith('aws:'))) {
    throw validationError("One or more parameter values were invalid: Tag keys starting with 'aws:' are reserved for system use");
  }
}

const ARN_PATTERN = /^arn:aws:dynamodb:([^:]+):(\d{12}):table\/([a-zA-Z0-9_.-]{3,255})$/;

/** The table a ResourceArn names, or DynamoDB's error for a malformed or unknown ARN. */
async function tableOfArn(body: RequestBody, ctx: EngineContext, region: string): Promise<TableRecord> {
  const arn = optionalString(body, 'ResourceArn');
  const constraints = new Constraints();
  if (constraints.notNull('resourceArn', arn)) constraints.length('resourceArn', arn, 1, 1283);
  constraints.throwIfAny();
  const match = ARN_PATTERN.exec(arn!);
  if (match === null) throw validationError(`Invalid TableArn: Invalid ResourceArn provided as input ${arn}`);
  const record = match[1] === region ? await ctx.catalog.get(match[3]) : undefined;
  if (record === undefined) throw resourceNotFound(`Requested resource not found: ResourceArn: ${arn} not found`);
  return record;
}

const tagResource: RouterOperationHandler = async (body, ctx, request) => {
  const constraints = new Constraints();
  const tags = parseTags(body, constraints, true);
  constraints.throwIfAny();
  if (Object.keys(tags!).length === 0) throw validationError('Atleast one Tag needs to be provided as Input.');
  checkReservedKeys(Object.keys(tags!));
  await request.tableLock(async () => {
    const record = await tableOfArn(body, ctx, request.region);
    const merged = { ...record.tags, ...tags };
    if (Object.keys(merged).length > MAX_TAGS_PER_RESOURCE) {
      throw validationError(`One or more parameter values were invalid: The number of tags exceeds the limit of ${MAX_TAGS_PER_RESOURCE} for the resource`);
    }
    await ctx.catalog.put({ ...record, tags: merged });
  });
  return {};
};

const untagResource: RouterOperationHandler = async (body, ctx, request) => {
  const constraints = new Constraints();
  const keys = optionalStringList(body, 'TagKeys');
  if (constraints.notNull('tagKeys', keys)) {
    keys!.forEach((key, index) => constraints.length(`tagKeys.${index + 1}.member`, key, 1, 128));
  }
  constraints.throwIfAny();
  if (keys!.length === 0) throw validationError('Atleast one Tag Key needs to be provided as Input.');
  await request.tableLock(async () => {
    const record = await tableOfArn(body, ctx, request.region);
    const remaining = Object.fromEntries(Object.entries(record.tags).filter(([key]) => !keys!.includes(key)));
    await ctx.catalog.put({ ...record, tags: remaining });
  });
  return {};
};

const listTagsOfResource: RouterOperationHandler = async (body, ctx, request) => {
  const record = await tableOfArn(body, ctx, request.region);
  // All of a table's tags fit in one page (at most 50), so there is never a NextToken.
  return { Tags: Object.entries(record.tags).map(([Key, Value]) => ({ Key, Value })) };
};

export const tagOperations: Record<string, RouterOperationHandler> = {
  TagResource: tagResource,
  UntagResource: untagResource,
  ListTagsOfResource: listTagsOfResource,
};
