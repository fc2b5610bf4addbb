import { resourceNotFound, setOwn, validationError } from '@shoal/model';
import type { DynamoDbError, TableRecord } from '@shoal/model';
import { ACCOUNT_ID } from './arn.ts';
import type { EngineContext } from './operation.ts';
import { Constraints, INVALID_PARAMETERS, optionalString, optionalStringList, optionalStructList } from './request.ts';
import type { RequestBody, RouterOperationHandler } from './request.ts';

/** TagResource, UntagResource, ListTagsOfResource: tags on tables, addressed by table ARN. */

const MAX_TAGS_PER_RESOURCE = 50;
const MAX_TAG_KEY_LENGTH = 128;
const MAX_TAG_VALUE_LENGTH = 256;
/** DynamoDB's tag text: letters, digits, white space and `_ . : / = + - @`. */
const TAG_TEXT = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;

interface RawTag {
  key?: string;
  value?: string;
}

/** Reads a `Tags` list (CreateTable, TagResource): member types only; `checkTags` judges the tags. */
export function readTagList(body: RequestBody, required: boolean): RawTag[] | undefined {
  const list = optionalStructList(body, 'Tags');
  if (required) {
    const constraints = new Constraints();
    constraints.notNull('tags', list);
    constraints.throwIfAny();
  }
  return list?.map((element) => ({ key: optionalString(element, 'Key'), value: optionalString(element, 'Value') }));
}

function tooMany(): DynamoDbError {
  return validationError('Number of Tags exceed the current limit for the provided ResourceArn');
}

/** DynamoDB's tag rules, with its messages; the tags as a map. */
export function checkTags(list: RawTag[]): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const { key, value } of list) {
    if (key === undefined || key.length === 0 || key.length > MAX_TAG_KEY_LENGTH || !TAG_TEXT.test(key)) {
      throw validationError(`The Tag Key provided is invalid, Key: ${key ?? 'null'}`);
    }
    if (key.startsWith('aws:')) throw validationError(`Tag Key cannot be prefixed with aws:, Key: ${key}`);
    if (value === undefined || value.length > MAX_TAG_VALUE_LENGTH || !TAG_TEXT.test(value)) {
      throw validationError(`The Tag Value provided is invalid, Value: ${value ?? 'null'}`);
    }
    if (Object.hasOwn(tags, key)) throw validationError(`Duplicate Tag Keys provided as input: Duplicate Tag Key found ${key}`);
    setOwn(tags, key, value);
  }
  if (Object.keys(tags).length > MAX_TAGS_PER_RESOURCE) throw tooMany();
  return tags;
}

/** The table a ResourceArn names, or DynamoDB's error for a malformed, foreign or unknown ARN. */
async function tableOfArn(body: RequestBody, ctx: EngineContext, region: string): Promise<TableRecord> {
  const arn = optionalString(body, 'ResourceArn');
  const constraints = new Constraints();
  if (constraints.notNull('resourceArn', arn)) constraints.length('resourceArn', arn, 1, 1283);
  constraints.throwIfAny();
  const text = arn!;
  if (!text.startsWith('arn:')) throw validationError(`${INVALID_PARAMETERS}ARNs must start with 'arn:': ${text}`);
  const [, partition, service, arnRegion, account, resource = ''] = text.split(':');
  if (partition !== 'aws' || service !== 'dynamodb') throw validationError(`${INVALID_PARAMETERS}Provided Arn is not a DynamoDB resource arn: ${text}`);
  const table = /^table\/([^/]+)$/.exec(resource);
  if (table === null) {
    throw validationError(`${INVALID_PARAMETERS}Invalid resource arn provided, only table or stream is accepted. Provided resource arn: ${text}`);
  }
  if (arnRegion !== region) throw validationError(`Invalid TableArn: Invalid ResourceArn provided as input ${text}`);
  const record = account === ACCOUNT_ID ? await ctx.catalog.get(table[1]) : undefined;
  // "ResourcArn" is DynamoDB's own spelling in this message.
  if (record === undefined) throw resourceNotFound(`Requested resource not found: ResourcArn: ${text} not found`);
  return record;
}

const tagResource: RouterOperationHandler = async (body, ctx, request) => {
  const list = readTagList(body, true)!;
  if (list.length === 0) throw validationError('Atleast one Tag needs to be provided as Input.');
  const tags = checkTags(list);
  await request.tableLock(async () => {
    const { schema } = await tableOfArn(body, ctx, request.region);
    await ctx.catalog.update(schema.name, (record) => {
      const merged = { ...record.tags, ...tags };
      if (Object.keys(merged).length > MAX_TAGS_PER_RESOURCE) throw tooMany();
      return { ...record, tags: merged };
    });
  });
  return {};
};

const untagResource: RouterOperationHandler = async (body, ctx, request) => {
  const keys = optionalStringList(body, 'TagKeys');
  const constraints = new Constraints();
  constraints.notNull('tagKeys', keys);
  constraints.throwIfAny();
  if (keys!.length === 0) throw validationError('Atleast one Tag Key needs to be provided as Input.');
  for (const key of keys!) {
    if (key.length === 0 || key.length > MAX_TAG_KEY_LENGTH || !TAG_TEXT.test(key)) {
      throw validationError(`The Tag Key provided is invalid, Key: ${key}`);
    }
  }
  await request.tableLock(async () => {
    const { schema } = await tableOfArn(body, ctx, request.region);
    await ctx.catalog.update(schema.name, (record) => ({
      ...record,
      tags: Object.fromEntries(Object.entries(record.tags).filter(([key]) => !keys!.includes(key))),
    }));
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
