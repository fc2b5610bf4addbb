import { createHash } from 'node:crypto';
import { DynamoDbError, getOwn, resourceInUse, resourceNotFound, validationError } from '@shoal/model';
import type {
  BillingMode,
  IndexProjection,
  IndexSchema,
  KeyAttribute,
  KeyAttributeType,
  ProvisionedThroughput,
  TableRecord,
  TableSchema,
} from '@shoal/model';
import { tableArn } from './arn.ts';
import { isHiddenTable } from './client-request-tokens.ts';
import type { EngineContext } from './operation.ts';
import {
  Constraints,
  INVALID_PARAMETERS,
  optionalBoolean,
  optionalInteger,
  optionalString,
  optionalStringList,
  optionalStruct,
  optionalStructList,
  requireTableName,
} from './request.ts';
import type { RequestBody, RequestInfo, RouterOperationHandler } from './request.ts';
import { checkTags, readTagList } from './tags.ts';

/** CreateTable, DescribeTable, ListTables, UpdateTable, DeleteTable. */

const MAX_LSIS = 5;
const MAX_GSIS = 20;
const MAX_PROJECTED_ATTRIBUTES = 100;
/** DynamoDB's upper bound on a capacity-unit value. */
const MAX_CAPACITY_UNITS = 1_000_000_000_000;

/** A stable UUID-shaped TableId: DynamoDB's is a UUID; ours derives from the key space id. */
function tableUuid(record: TableRecord): string {
  const hex = createHash('sha256').update(`${record.schema.name}/${record.schema.tableId}/${record.createdAt}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

// ---------------------------------------------------------------------------------------------
// Parsing the shared shapes: key schemas, projections, throughput, attribute definitions.

interface KeySchemaInput {
  hash: string;
  range?: string;
}

interface RawKeyElement {
  name?: string;
  keyType?: string;
}

interface RawIndex {
  name?: string;
  keySchema: RawKeyElement[];
  projection: { type?: string; nonKey?: string[] };
  throughput?: ProvisionedThroughput;
}

interface IndexInput {
  name: string;
  keys: KeySchemaInput;
  projection: IndexProjection;
  throughput?: ProvisionedThroughput;
}

/** Table and LSI keys have at most 2 elements; a GSI key up to 4 HASH and 4 RANGE attributes. */
const MAX_TABLE_KEY_ELEMENTS = 2;
const MAX_GSI_KEY_ELEMENTS = 8;
const MAX_GSI_KEY_ATTRIBUTES_PER_TYPE = 4;

/** Reads a KeySchema list's member types and constraints; semantic checks come later. */
function readKeySchema(list: RequestBody[] | undefined, path: string, constraints: Constraints, maxElements: number): RawKeyElement[] {
  if (!constraints.notNull(path, list)) return [];
  constraints.length(path, list, 1, maxElements);
  return list!.map((element, index) => {
    const name = optionalString(element, 'AttributeName');
    const keyType = optionalString(element, 'KeyType');
    const elementPath = `${path}.${index + 1}.member`;
    if (constraints.notNull(`${elementPath}.attributeName`, name)) constraints.length(`${elementPath}.attributeName`, name, 1, 255);
    if (constraints.notNull(`${elementPath}.keyType`, keyType)) constraints.oneOf(`${elementPath}.keyType`, keyType, ['HASH', 'RANGE']);
    return { name, keyType };
  });
}

/** DynamoDB's checks of a table or LSI key schema whose members passed their constraints. */
function checkKeySchema(elements: RawKeyElement[]): KeySchemaInput {
  const [first, second] = elements;
  if (second !== undefined && first.name === second.name) {
    throw validationError('Both the Hash Key and the Range Key element in the KeySchema have the same name');
  }
  if (first.keyType !== 'HASH') throw validationError('Invalid KeySchema: The first KeySchemaElement is not a HASH key type');
  if (second !== undefined && second.keyType !== 'RANGE') {
    throw validationError('Invalid KeySchema: The second KeySchemaElement is not a RANGE key type');
  }
  return { hash: first.name!, range: second?.name };
}

/**
 * A GSI key schema: DynamoDB accepts up to 4 HASH then up to 4 RANGE attributes (multi-attribute
 * keys); Shoal's indexes have one of each at most, and says so rather than indexing something else.
 */
function checkGsiKeySchema(elements: RawKeyElement[], indexName: string): KeySchemaInput {
  const hashes = elements.filter((element) => element.keyType === 'HASH').length;
  const ranges = elements.length - hashes;
  if (hashes > MAX_GSI_KEY_ATTRIBUTES_PER_TYPE) {
    throw validationError(`${INVALID_PARAMETERS}The KeySchema exceeds the maximum allowed number of HASH key attributes`);
  }
  if (ranges > MAX_GSI_KEY_ATTRIBUTES_PER_TYPE) {
    throw validationError(`${INVALID_PARAMETERS}The KeySchema exceeds the maximum allowed number of RANGE key attributes`);
  }
  if (new Set(elements.map((element) => element.name)).size !== elements.length) {
    throw validationError('The KeySchema contains multiple key attributes with the same name');
  }
  if (elements[0].keyType !== 'HASH') throw validationError('Invalid KeySchema: The first KeySchemaElement is not a HASH key type');
  if (elements.some((element, index) => element.keyType === 'HASH' && index >= hashes)) {
    throw validationError(`${INVALID_PARAMETERS}All HASH key attributes must precede RANGE key attributes in the KeySchema`);
  }
  if (hashes > 1 || ranges > 1) {
    throw validationError(
      `Shoal does not support multi-attribute keys in global secondary indexes yet: index ${indexName} has ` +
        `${hashes} HASH and ${ranges} RANGE attributes; at most one of each is supported`,
    );
  }
  return { hash: elements[0].name!, range: elements[1]?.name };
}

function keyNames(keys: KeySchemaInput): string[] {
  return keys.range === undefined ? [keys.hash] : [keys.hash, keys.range];
}

function readThroughput(
  body: RequestBody,
  field: string,
  path: string,
  constraints: Constraints,
): ProvisionedThroughput | undefined {
  const struct = optionalStruct(body, field);
  if (struct === undefined) return undefined;
  const read = optionalInteger(struct, 'ReadCapacityUnits');
  const write = optionalInteger(struct, 'WriteCapacityUnits');
  // DynamoDB reports the write units first.
  if (constraints.notNull(`${path}.writeCapacityUnits`, write)) constraints.range(`${path}.writeCapacityUnits`, write, 1);
  if (constraints.notNull(`${path}.readCapacityUnits`, read)) constraints.range(`${path}.readCapacityUnits`, read, 1);
  return { readCapacityUnits: read ?? 0, writeCapacityUnits: write ?? 0 };
}

function checkThroughputBounds(throughput: ProvisionedThroughput): void {
  if (throughput.readCapacityUnits > MAX_CAPACITY_UNITS) {
    throw validationError(`Given value ${throughput.readCapacityUnits} for ReadCapacityUnits is out of bounds`);
  }
  if (throughput.writeCapacityUnits > MAX_CAPACITY_UNITS) {
    throw validationError(`Given value ${throughput.writeCapacityUnits} for WriteCapacityUnits is out of bounds`);
  }
}

function readProjection(body: RequestBody, path: string, constraints: Constraints): RawIndex['projection'] {
  const projection = optionalStruct(body, 'Projection');
  if (!constraints.notNull(`${path}.projection`, projection)) return {};
  const type = optionalString(projection!, 'ProjectionType');
  const nonKey = optionalStringList(projection!, 'NonKeyAttributes');
  constraints.oneOf(`${path}.projection.projectionType`, type, ['ALL', 'KEYS_ONLY', 'INCLUDE']);
  constraints.length(`${path}.projection.nonKeyAttributes`, nonKey, 1, 20);
  return { type, nonKey };
}

function checkProjection(projection: RawIndex['projection']): IndexProjection {
  if (projection.type === undefined) throw validationError(`${INVALID_PARAMETERS}Unknown ProjectionType: null`);
  if (projection.nonKey !== undefined && projection.type !== 'INCLUDE') {
    throw validationError(`${INVALID_PARAMETERS}ProjectionType is ${projection.type}, but NonKeyAttributes is specified`);
  }
  if (projection.type === 'INCLUDE') {
    const nonKey = projection.nonKey;
    if (nonKey === undefined) throw validationError(`${INVALID_PARAMETERS}ProjectionType is INCLUDE, but NonKeyAttributes is not specified`);
    const duplicate = nonKey.find((name, index) => nonKey.indexOf(name) !== index);
    if (duplicate !== undefined) throw validationError(`${INVALID_PARAMETERS}Duplicate element in NonKeyAttributes: ${duplicate}`);
    return { type: 'INCLUDE', nonKeyAttributes: nonKey };
  }
  return { type: projection.type as 'ALL' | 'KEYS_ONLY' };
}

/** Reads an AttributeDefinitions list (constraints only). */
function readAttributeDefinitions(
  body: RequestBody,
  constraints: Constraints,
  required: boolean,
): { name?: string; type?: string }[] | undefined {
  const list = optionalStructList(body, 'AttributeDefinitions');
  if (required && !constraints.notNull('attributeDefinitions', list)) return undefined;
  return list?.map((element, index) => {
    const name = optionalString(element, 'AttributeName');
    const type = optionalString(element, 'AttributeType');
    const path = `attributeDefinitions.${index + 1}.member`;
    if (constraints.notNull(`${path}.attributeName`, name)) constraints.length(`${path}.attributeName`, name, 1, 255);
    if (constraints.notNull(`${path}.attributeType`, type)) constraints.oneOf(`${path}.attributeType`, type, ['S', 'N', 'B']);
    return { name, type };
  });
}

function definitionMap(definitions: { name?: string; type?: string }[]): Map<string, KeyAttributeType> {
  const map = new Map<string, KeyAttributeType>();
  for (const { name, type } of definitions) {
    if (map.has(name!)) throw validationError(`Attribute Name is duplicated: ${name}`);
    map.set(name!, type as KeyAttributeType);
  }
  return map;
}

function undefinedKeys(names: string[], definitions: Map<string, KeyAttributeType>): DynamoDbError {
  return validationError(
    `${INVALID_PARAMETERS}Some index key attributes are not defined in AttributeDefinitions. ` +
      `Keys: [${names.join(', ')}], AttributeDefinitions: [${[...definitions.keys()].join(', ')}]`,
  );
}

function keyAttribute(name: string, definitions: Map<string, KeyAttributeType>): KeyAttribute {
  return { name, type: definitions.get(name)! };
}

/** Reads one entry of LocalSecondaryIndexes / GlobalSecondaryIndexes / a GSI Create action. */
function readIndex(element: RequestBody, path: string, constraints: Constraints, kind: 'LSI' | 'GSI'): RawIndex {
  const name = optionalString(element, 'IndexName');
  if (constraints.notNull(`${path}.indexName`, name)) constraints.name(`${path}.indexName`, name);
  const maxElements = kind === 'GSI' ? MAX_GSI_KEY_ELEMENTS : MAX_TABLE_KEY_ELEMENTS;
  const keySchema = readKeySchema(optionalStructList(element, 'KeySchema'), `${path}.keySchema`, constraints, maxElements);
  const projection = readProjection(element, path, constraints);
  const throughput = kind === 'GSI'
    ? readThroughput(element, 'ProvisionedThroughput', `${path}.provisionedThroughput`, constraints)
    : undefined;
  return { name, keySchema, projection, throughput };
}

function checkIndex(raw: RawIndex, kind: 'LSI' | 'GSI', definitions: Map<string, KeyAttributeType>): IndexInput {
  const name = raw.name!;
  const keys = kind === 'GSI' ? checkGsiKeySchema(raw.keySchema, name) : checkKeySchema(raw.keySchema);
  const missing = keyNames(keys).filter((key) => !definitions.has(key));
  if (missing.length > 0) throw undefinedKeys(missing, definitions);
  const projection = checkProjection(raw.projection);
  if (raw.throughput !== undefined) checkThroughputBounds(raw.throughput);
  return { name, keys, projection, throughput: raw.throughput };
}

// ---------------------------------------------------------------------------------------------
// Descriptions.

function throughputDescription(throughput: ProvisionedThroughput | undefined): Record<string, number> {
  return {
    NumberOfDecreasesToday: 0,
    ReadCapacityUnits: throughput?.readCapacityUnits ?? 0,
    WriteCapacityUnits: throughput?.writeCapacityUnits ?? 0,
  };
}

function keySchemaDescription(hash: KeyAttribute, range?: KeyAttribute): Record<string, string>[] {
  const schema = [{ AttributeName: hash.name, KeyType: 'HASH' }];
  if (range !== undefined) schema.push({ AttributeName: range.name, KeyType: 'RANGE' });
  return schema;
}

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** DynamoDB describes NonKeyAttributes sorted by name, whatever order they were given in. */
function projectionDescription(projection: IndexProjection): Record<string, unknown> {
  return projection.type === 'INCLUDE'
    ? { ProjectionType: 'INCLUDE', NonKeyAttributes: [...(projection.nonKeyAttributes ?? [])].sort(byName) }
    : { ProjectionType: projection.type };
}

/** The key attributes of the table and its indexes by name: exactly what AttributeDefinitions holds. */
function keyAttributeTypes(schema: TableSchema): Map<string, KeyAttributeType> {
  const seen = new Map<string, KeyAttributeType>();
  for (const key of [schema.hashKey, schema.rangeKey, ...schema.indexes.flatMap((index) => [index.hashKey, index.rangeKey])]) {
    if (key !== undefined && !seen.has(key.name)) seen.set(key.name, key.type);
  }
  return seen;
}

/** AttributeDefinitions as DynamoDB describes them: sorted by name. */
function attributeDefinitions(schema: TableSchema): Record<string, string>[] {
  return [...keyAttributeTypes(schema)]
    .sort(([a], [b]) => byName(a, b))
    .map(([name, type]) => ({ AttributeName: name, AttributeType: type }));
}

/** DynamoDB's TableDescription of a table record, with live item counts and sizes. */
export async function describeTable(
  record: TableRecord,
  ctx: EngineContext,
  region: string,
  options: { status?: string; deletingIndexes?: IndexSchema[] } = {},
): Promise<Record<string, unknown>> {
  const { schema } = record;
  const arn = tableArn(region, schema.name);
  const stats = await ctx.partitions.statistics(schema);
  const description: Record<string, unknown> = {
    AttributeDefinitions: attributeDefinitions({ ...schema, indexes: [...schema.indexes, ...(options.deletingIndexes ?? [])] }),
    TableName: schema.name,
    KeySchema: keySchemaDescription(schema.hashKey, schema.rangeKey),
    TableStatus: options.status ?? record.status,
    CreationDateTime: record.createdAt,
    ProvisionedThroughput: throughputDescription(record.billingMode === 'PROVISIONED' ? record.provisioned : undefined),
    TableSizeBytes: stats.sizeBytes,
    ItemCount: stats.itemCount,
    TableArn: arn,
    TableId: tableUuid(record),
    // Shoal refuses to enable deletion protection, so it is always off.
    DeletionProtectionEnabled: false,
  };
  if (record.billingMode === 'PAY_PER_REQUEST') {
    description.BillingModeSummary = { BillingMode: 'PAY_PER_REQUEST', LastUpdateToPayPerRequestDateTime: record.createdAt };
  }
  const lsis: Record<string, unknown>[] = [];
  const gsis: Record<string, unknown>[] = [];
  for (const index of schema.indexes) {
    const indexStats = await ctx.partitions.statistics(schema, index.name);
    const common = {
      IndexName: index.name,
      KeySchema: keySchemaDescription(index.hashKey, index.rangeKey),
      Projection: projectionDescription(index.projection),
      IndexSizeBytes: indexStats.sizeBytes,
      ItemCount: indexStats.itemCount,
      IndexArn: `${arn}/index/${index.name}`,
    };
    if (index.kind === 'LSI') {
      lsis.push(common);
      continue;
    }
    const backfilling = record.backfilling?.includes(index.name) ?? false;
    gsis.push({
      ...common,
      IndexStatus: backfilling ? 'CREATING' : 'ACTIVE',
      ...(backfilling ? { Backfilling: true } : {}),
      ProvisionedThroughput: throughputDescription(
        record.billingMode === 'PROVISIONED' ? getOwn(record.indexThroughput, index.name) : undefined,
      ),
    });
  }
  for (const index of options.deletingIndexes ?? []) {
    gsis.push({
      IndexName: index.name,
      KeySchema: keySchemaDescription(index.hashKey, index.rangeKey),
      Projection: projectionDescription(index.projection),
      IndexStatus: 'DELETING',
      ProvisionedThroughput: throughputDescription(undefined),
      IndexSizeBytes: 0,
      ItemCount: 0,
      IndexArn: `${arn}/index/${index.name}`,
    });
  }
  if (lsis.length > 0) description.LocalSecondaryIndexes = lsis;
  if (gsis.length > 0) description.GlobalSecondaryIndexes = gsis;
  return description;
}

/** The table named by a table-management request, or DynamoDB's "Table: X not found". */
async function requireExistingTable(ctx: EngineContext, name: string): Promise<TableRecord> {
  const record = await ctx.catalog.get(name);
  if (record === undefined) throw resourceNotFound(`Requested resource not found: Table: ${name} not found`);
  return record;
}

// ---------------------------------------------------------------------------------------------
// CreateTable.

/**
 * Features DynamoDB has that Shoal does not build yet: refused clearly, never ignored silently. A
 * stream being disabled gets DynamoDB's own answers (a Shoal table never has a stream).
 */
function refuseUnbuiltFeatures(body: RequestBody, operation: 'CreateTable' | 'UpdateTable'): void {
  const streams = optionalStruct(body, 'StreamSpecification');
  if (streams !== undefined) {
    const enabled = optionalBoolean(streams, 'StreamEnabled');
    if (enabled === true) {
      throw validationError('Shoal does not support DynamoDB Streams yet: StreamSpecification.StreamEnabled must be false');
    }
    if (operation === 'UpdateTable') throw validationError(`Table has no stream to disable: TableName: ${optionalString(body, 'TableName')}`);
    if (optionalString(streams, 'StreamViewType') !== undefined) {
      throw validationError(`${INVALID_PARAMETERS}Table is being created with a stream disabled, UpdateViewType should not be specified`);
    }
  }
  if (optionalBoolean(body, 'DeletionProtectionEnabled') === true) {
    throw validationError('Shoal does not support deletion protection yet: DeletionProtectionEnabled must be false');
  }
  const tableClass = optionalString(body, 'TableClass');
  if (tableClass !== undefined && !TABLE_CLASSES.includes(tableClass)) {
    throw validationError(`Invalid table-class parameter provided. Please try again with a valid table-class value: [${TABLE_CLASSES.join(', ')}].`);
  }
  if (tableClass === 'STANDARD_INFREQUENT_ACCESS') {
    throw validationError('Shoal does not support table classes yet: TableClass must be STANDARD');
  }
}

const TABLE_CLASSES = ['STANDARD', 'STANDARD_INFREQUENT_ACCESS'];

const createTable: RouterOperationHandler = async (body, ctx, request) => {
  const constraints = new Constraints();
  const tableName = optionalString(body, 'TableName');
  const definitionsRaw = readAttributeDefinitions(body, constraints, true);
  const keySchemaRaw = readKeySchema(optionalStructList(body, 'KeySchema'), 'keySchema', constraints, MAX_TABLE_KEY_ELEMENTS);
  constraints.tableName('tableName', tableName);
  const billingMode = optionalString(body, 'BillingMode');
  constraints.oneOf('billingMode', billingMode, ['PROVISIONED', 'PAY_PER_REQUEST']);
  const throughput = readThroughput(body, 'ProvisionedThroughput', 'provisionedThroughput', constraints);
  const lsisRaw = optionalStructList(body, 'LocalSecondaryIndexes')?.map((element, index) =>
    readIndex(element, `localSecondaryIndexes.${index + 1}.member`, constraints, 'LSI'),
  );
  const gsisRaw = optionalStructList(body, 'GlobalSecondaryIndexes')?.map((element, index) =>
    readIndex(element, `globalSecondaryIndexes.${index + 1}.member`, constraints, 'GSI'),
  );
  const tagList = readTagList(body, false);
  constraints.throwIfAny();
  refuseUnbuiltFeatures(body, 'CreateTable');

  // AttributeDefinitions must be exactly the key attributes; DynamoDB checks this before anything else.
  const definitions = definitionMap(definitionsRaw!);
  const hasIndexes = lsisRaw !== undefined || gsisRaw !== undefined;
  const usedNames = [
    ...new Set([...keySchemaRaw, ...[...(lsisRaw ?? []), ...(gsisRaw ?? [])].flatMap((index) => index.keySchema)].map((e) => e.name!)),
  ];
  const missing = usedNames.filter((name) => !definitions.has(name));
  if (missing.length > 0) {
    if (!hasIndexes && usedNames.length > definitions.size) {
      throw validationError('Invalid KeySchema: Some index key attribute have no definition');
    }
    throw undefinedKeys(missing, definitions);
  }
  if (definitions.size > usedNames.length) {
    throw validationError(
      hasIndexes
        ? `${INVALID_PARAMETERS}Some AttributeDefinitions are not used. AttributeDefinitions: [${[...definitions.keys()].join(', ')}], ` +
            `keys used: [${usedNames.join(', ')}]`
        : `${INVALID_PARAMETERS}Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions`,
    );
  }

  const mode: BillingMode = billingMode === 'PAY_PER_REQUEST' ? 'PAY_PER_REQUEST' : 'PROVISIONED';
  if (mode === 'PAY_PER_REQUEST' && throughput !== undefined) {
    throw validationError(`${INVALID_PARAMETERS}Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST`);
  }
  if (mode === 'PROVISIONED') {
    if (throughput === undefined) {
      throw validationError(`${INVALID_PARAMETERS}ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED`);
    }
    checkThroughputBounds(throughput);
  }
  const tableKeys = checkKeySchema(keySchemaRaw);

  const indexNames = new Set<string>();
  const claimName = (name: string): void => {
    if (indexNames.has(name)) throw validationError(`${INVALID_PARAMETERS}Duplicate index name: ${name}`);
    indexNames.add(name);
  };
  const lsis: IndexInput[] = [];
  if (lsisRaw !== undefined) {
    if (lsisRaw.length === 0) throw validationError(`${INVALID_PARAMETERS}List of LocalSecondaryIndexes is empty`);
    if (tableKeys.range === undefined) {
      throw validationError(`${INVALID_PARAMETERS}Table KeySchema does not have a range key, which is required when specifying a LocalSecondaryIndex`);
    }
    for (const raw of lsisRaw) {
      const index = checkIndex(raw, 'LSI', definitions);
      if (index.keys.range === undefined) {
        throw validationError(`${INVALID_PARAMETERS}Index KeySchema does not have a range key for index: ${index.name}`);
      }
      if (index.keys.hash !== tableKeys.hash) {
        throw validationError(
          `${INVALID_PARAMETERS}Index KeySchema does not have the same leading hash key as table KeySchema for index: ` +
            `${index.name}. index hash key: ${index.keys.hash}, table hash key: ${tableKeys.hash}`,
        );
      }
      claimName(index.name);
      lsis.push(index);
    }
    if (lsis.length > MAX_LSIS) {
      throw validationError(`${INVALID_PARAMETERS}Number of LocalSecondaryIndexes exceeds per-table limit of ${MAX_LSIS}`);
    }
  }
  const gsis: IndexInput[] = [];
  if (gsisRaw !== undefined) {
    if (gsisRaw.length === 0) throw validationError(`${INVALID_PARAMETERS}List of GlobalSecondaryIndexes is empty`);
    for (const raw of gsisRaw) {
      const index = checkIndex(raw, 'GSI', definitions);
      if (mode === 'PAY_PER_REQUEST' && index.throughput !== undefined) {
        throw validationError(`${INVALID_PARAMETERS}ProvisionedThroughput should not be specified for index: ${index.name} when BillingMode is PAY_PER_REQUEST`);
      }
      if (mode === 'PROVISIONED' && index.throughput === undefined) {
        throw validationError(`${INVALID_PARAMETERS}ProvisionedThroughput is not specified for index: ${index.name}`);
      }
      claimName(index.name);
      gsis.push(index);
    }
    if (gsis.length > MAX_GSIS) {
      throw validationError(`${INVALID_PARAMETERS}GlobalSecondaryIndex count exceeds the per-table limit of ${MAX_GSIS}`);
    }
  }
  const projected = [...lsis, ...gsis].reduce((sum, index) => sum + (index.projection.nonKeyAttributes?.length ?? 0), 0);
  if (projected > MAX_PROJECTED_ATTRIBUTES) {
    throw validationError(`${INVALID_PARAMETERS}Number of projected attributes in all indexes exceeds limit of ${MAX_PROJECTED_ATTRIBUTES}, provided: ${projected}`);
  }
  const tags = checkTags(tagList ?? []);

  return request.tableLock(async () => {
    if ((await ctx.catalog.get(tableName!)) !== undefined) {
      throw resourceInUse(`Table already exists: ${tableName}`);
    }
    const tableId = await ctx.catalog.allocateSpaceId();
    const indexes: IndexSchema[] = [];
    for (const [kind, list] of [['LSI', lsis], ['GSI', gsis]] as const) {
      for (const index of list) {
        indexes.push({
          name: index.name,
          kind,
          indexId: await ctx.catalog.allocateSpaceId(),
          hashKey: keyAttribute(index.keys.hash, definitions),
          ...(index.keys.range === undefined ? {} : { rangeKey: keyAttribute(index.keys.range, definitions) }),
          projection: index.projection,
        });
      }
    }
    const record: TableRecord = {
      schema: {
        name: tableName!,
        tableId,
        hashKey: keyAttribute(tableKeys.hash, definitions),
        ...(tableKeys.range === undefined ? {} : { rangeKey: keyAttribute(tableKeys.range, definitions) }),
        indexes,
      },
      // Shoal creates a table's key space at once, so a table is usable as soon as it exists.
      status: 'ACTIVE',
      createdAt: ctx.now() / 1000,
      billingMode: mode,
      ...(mode === 'PROVISIONED'
        ? {
            provisioned: throughput,
            indexThroughput: Object.fromEntries(gsis.map((index) => [index.name, index.throughput!])),
          }
        : {}),
      tags,
    };
    await ctx.catalog.create(record);
    return { TableDescription: await describeTable(record, ctx, request.region) };
  });
};

// ---------------------------------------------------------------------------------------------
// DescribeTable, ListTables, DeleteTable.

const describeTableOperation: RouterOperationHandler = async (body, ctx, request) => {
  const name = requireTableName(body);
  const record = await requireExistingTable(ctx, name);
  return { Table: await describeTable(record, ctx, request.region) };
};

const listTables: RouterOperationHandler = async (body, ctx) => {
  const constraints = new Constraints();
  const limit = optionalInteger(body, 'Limit');
  const start = optionalString(body, 'ExclusiveStartTableName');
  constraints.range('limit', limit, 1, 100);
  constraints.name('exclusiveStartTableName', start);
  constraints.throwIfAny();
  const pageSize = limit ?? 100;
  const names = (await ctx.catalog.list())
    .map((record) => record.schema.name)
    .filter((name) => !isHiddenTable(name) && (start === undefined || name > start));
  const page = names.slice(0, pageSize);
  return names.length > pageSize ? { TableNames: page, LastEvaluatedTableName: page[page.length - 1] } : { TableNames: page };
};

const deleteTable: RouterOperationHandler = async (body, ctx, request) => {
  const name = requireTableName(body);
  return request.tableLock(async () => {
    const record = await requireExistingTable(ctx, name);
    if ((record.backfilling?.length ?? 0) > 0) {
      throw resourceInUse(
        'Attempt to change a resource which is still in use: Cannot delete table while indexes are being created, updated, or deleted.',
      );
    }
    const description = await describeTable(record, ctx, request.region, { status: 'DELETING' });
    // The record goes first: a crash in between leaves unreachable data in a key space never reused.
    await ctx.catalog.delete(name);
    await ctx.partitions.dropTable(record.schema);
    return { TableDescription: description };
  });
};

// ---------------------------------------------------------------------------------------------
// UpdateTable.

type GsiUpdate =
  | { kind: 'Create'; raw: RawIndex }
  | { kind: 'Delete'; name: string }
  | { kind: 'Update'; name: string; throughput: ProvisionedThroughput };

function readGsiUpdates(body: RequestBody, constraints: Constraints): GsiUpdate[] | undefined {
  const list = optionalStructList(body, 'GlobalSecondaryIndexUpdates');
  return list?.map((element, index): GsiUpdate => {
    const path = `globalSecondaryIndexUpdates.${index + 1}.member`;
    const create = optionalStruct(element, 'Create');
    const remove = optionalStruct(element, 'Delete');
    const update = optionalStruct(element, 'Update');
    const actions = [create, remove, update].filter((action) => action !== undefined).length;
    if (actions === 0) {
      throw validationError(
        `${INVALID_PARAMETERS}One of GlobalSecondaryIndexUpdate.Update, GlobalSecondaryIndexUpdate.Create, GlobalSecondaryIndexUpdate.Delete must not be null`,
      );
    }
    if (actions > 1) throw validationError(`${INVALID_PARAMETERS}Only one global secondary index action is allowed per GlobalSecondaryIndexUpdate object`);
    if (create !== undefined) return { kind: 'Create', raw: readIndex(create, `${path}.create`, constraints, 'GSI') };
    const action = (remove ?? update)!;
    const actionPath = `${path}.${remove !== undefined ? 'delete' : 'update'}`;
    const name = optionalString(action, 'IndexName');
    if (constraints.notNull(`${actionPath}.indexName`, name)) constraints.name(`${actionPath}.indexName`, name);
    if (remove !== undefined) return { kind: 'Delete', name: name ?? '' };
    const throughput = readThroughput(action, 'ProvisionedThroughput', `${actionPath}.provisionedThroughput`, constraints);
    constraints.notNull(`${actionPath}.provisionedThroughput`, throughput);
    return { kind: 'Update', name: name ?? '', throughput: throughput ?? { readCapacityUnits: 0, writeCapacityUnits: 0 } };
  });
}

function sameThroughput(a: ProvisionedThroughput | undefined, b: ProvisionedThroughput): boolean {
  return a !== undefined && a.readCapacityUnits === b.readCapacityUnits && a.writeCapacityUnits === b.writeCapacityUnits;
}

/** DynamoDB's answer to a throughput change that changes nothing (`indexName` for a GSI). */
function unchangedThroughput(current: ProvisionedThroughput, requested: ProvisionedThroughput, indexName?: string): DynamoDbError {
  const subject = indexName === undefined ? 'the table' : `index ${indexName}`;
  return validationError(
    `The provisioned throughput for ${indexName === undefined ? 'the table' : `the index ${indexName}`} will not change. ` +
      'The requested value equals the current value. ' +
      `Current ReadCapacityUnits provisioned for ${subject}: ${current.readCapacityUnits}. Requested ReadCapacityUnits: ${requested.readCapacityUnits}. ` +
      `Current WriteCapacityUnits provisioned for ${subject}: ${current.writeCapacityUnits}. Requested WriteCapacityUnits: ${requested.writeCapacityUnits}. ` +
      'Refer to the Amazon DynamoDB Developer Guide for current limits and how to request higher limits.',
  );
}

function onlyOneIndexChange(): DynamoDbError {
  return new DynamoDbError(
    'LimitExceededException',
    'Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table',
  );
}

const AT_LEAST_ONE_UPDATE =
  'At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates, ' +
  'SSESpecification, ReplicaUpdates, MultiAccountReplicaReady, ReplicaTransitRoleArn, MultiRegionConsistency, ' +
  'DeletionProtectionEnabled, OnDemandThroughput, WarmThroughput or TableClass is required';

const updateTable: RouterOperationHandler = async (body, ctx, request) => {
  const constraints = new Constraints();
  const tableName = optionalString(body, 'TableName');
  constraints.tableName('tableName', tableName);
  const billingMode = optionalString(body, 'BillingMode');
  constraints.oneOf('billingMode', billingMode, ['PROVISIONED', 'PAY_PER_REQUEST']);
  const throughput = readThroughput(body, 'ProvisionedThroughput', 'provisionedThroughput', constraints);
  const definitionsRaw = readAttributeDefinitions(body, constraints, false);
  const gsiUpdates = readGsiUpdates(body, constraints);
  const deletionProtection = optionalBoolean(body, 'DeletionProtectionEnabled');
  constraints.throwIfAny();
  // An empty GlobalSecondaryIndexUpdates list counts as absent, unless something else changes.
  const otherChange =
    throughput !== undefined || billingMode !== undefined || deletionProtection !== undefined || optionalString(body, 'TableClass') !== undefined;
  if (!otherChange && (gsiUpdates === undefined || gsiUpdates.length === 0) && optionalStruct(body, 'StreamSpecification') === undefined) {
    throw validationError(AT_LEAST_ONE_UPDATE);
  }
  refuseUnbuiltFeatures(body, 'UpdateTable');
  if (gsiUpdates !== undefined && gsiUpdates.length === 0) throw validationError(`${INVALID_PARAMETERS}List of GlobalSecondaryIndexUpdates is empty`);
  if (billingMode === 'PROVISIONED' && throughput === undefined) {
    throw validationError(`${INVALID_PARAMETERS}ProvisionedThroughput must be specified when BillingMode is PROVISIONED`);
  }
  if (throughput !== undefined) checkThroughputBounds(throughput);
  const touched = new Set<string>();
  for (const update of gsiUpdates ?? []) {
    const name = update.kind === 'Create' ? update.raw.name! : update.name;
    if (touched.has(name)) {
      throw validationError(`${INVALID_PARAMETERS}Only one global secondary index update per index is allowed simultaneously. Index: ${name}`);
    }
    touched.add(name);
  }
  const creates = (gsiUpdates ?? []).flatMap((update) => (update.kind === 'Create' ? [update] : []));
  const deletes = (gsiUpdates ?? []).flatMap((update) => (update.kind === 'Delete' ? [update] : []));
  const updates = (gsiUpdates ?? []).flatMap((update) => (update.kind === 'Update' ? [update] : []));
  if (creates.length + deletes.length > 1) throw onlyOneIndexChange();
  if (creates.length + deletes.length > 0 && throughput !== undefined) {
    throw validationError(`${INVALID_PARAMETERS}You cannot create or delete index while updating table IOPS`);
  }
  const [create] = creates;
  if (create !== undefined && definitionsRaw === undefined) {
    throw validationError(`${INVALID_PARAMETERS}AttributeDefinitions is not specified for index: ${create.raw.name}`);
  }

  // The change made to the table's current record (made again on a newer one if another router changed it meanwhile).
  const changeTable = async (record: TableRecord): Promise<TableUpdate> => {
    const mode: BillingMode = (billingMode as BillingMode | undefined) ?? record.billingMode;
    if (throughput !== undefined && mode === 'PAY_PER_REQUEST') {
      throw validationError(`${INVALID_PARAMETERS}Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST`);
    }
    if (throughput !== undefined && record.billingMode === 'PROVISIONED' && sameThroughput(record.provisioned, throughput)) {
      throw unchangedThroughput(record.provisioned!, throughput);
    }
    const [remove] = deletes;
    const building = record.backfilling ?? [];
    // An index still building blocks creating or deleting another (but may itself be deleted).
    if (create !== undefined && building.length > 0) throw onlyOneIndexChange();
    if (remove !== undefined && building.some((name) => name !== remove.name)) throw onlyOneIndexChange();

    const next: TableRecord = structuredClone(record);
    next.billingMode = mode;
    if (mode === 'PAY_PER_REQUEST') {
      delete next.provisioned;
      delete next.indexThroughput;
    } else if (throughput !== undefined) {
      next.provisioned = throughput;
    }

    const indexNamed = (name: string): IndexSchema | undefined => record.schema.indexes.find((index) => index.name === name);
    const requireGsi = (name: string, action: 'update' | 'delete'): IndexSchema => {
      const index = indexNamed(name);
      if (index === undefined) throw resourceNotFound(`Requested resource not found: Index ${name} for table ${tableName}`);
      if (index.kind !== 'GSI') throw validationError(`Cannot ${action} an index that is not a GlobalSecondaryIndex: ${name}`);
      return index;
    };
    for (const update of updates) {
      requireGsi(update.name, 'update');
      if (mode === 'PAY_PER_REQUEST') {
        throw validationError(
          `${INVALID_PARAMETERS}Neither ReadCapacityUnits nor WriteCapacityUnits can be specified for index: ${update.name} when BillingMode is PAY_PER_REQUEST`,
        );
      }
      checkThroughputBounds(update.throughput);
      const current = record.billingMode === 'PROVISIONED' ? getOwn(record.indexThroughput, update.name) : undefined;
      if (sameThroughput(current, update.throughput)) throw unchangedThroughput(current!, update.throughput, update.name);
      next.indexThroughput = { ...next.indexThroughput, [update.name]: update.throughput };
    }
    const gsiNames = record.schema.indexes.filter((index) => index.kind === 'GSI').map((index) => index.name);
    if (mode === 'PROVISIONED' && record.billingMode === 'PAY_PER_REQUEST') {
      const missing = gsiNames.filter((name) => name !== remove?.name && getOwn(next.indexThroughput, name) === undefined);
      if (missing.length > 0) {
        throw validationError(`${INVALID_PARAMETERS}ProvisionedThroughput must be specified for index: ${missing.join(',')}`);
      }
    }

    let created: IndexSchema | undefined;
    if (create !== undefined) {
      if (indexNamed(create.raw.name!) !== undefined) throw validationError('Attempting to create an index which already exists');
      if (gsiNames.length + 1 > MAX_GSIS) {
        throw new DynamoDbError(
          'LimitExceededException',
          `Subscriber limit exceeded: Number of global secondary indexes exceeds per-table limit of ${MAX_GSIS}`,
        );
      }
      // Existing key attributes keep their types; other supplied definitions only serve the new keys.
      const definitions = keyAttributeTypes(record.schema);
      for (const { name, type } of definitionsRaw ?? []) {
        if (!definitions.has(name!)) definitions.set(name!, type as KeyAttributeType);
      }
      const index = checkIndex(create.raw, 'GSI', definitions);
      if (mode === 'PAY_PER_REQUEST' && index.throughput !== undefined) {
        throw validationError(
          `${INVALID_PARAMETERS}Neither ReadCapacityUnits nor WriteCapacityUnits can be specified for index: ${index.name} when BillingMode is PAY_PER_REQUEST`,
        );
      }
      if (mode === 'PROVISIONED' && index.throughput === undefined) {
        throw validationError(`${INVALID_PARAMETERS}ProvisionedThroughput must be specified for index: ${index.name}`);
      }
      created = {
        name: index.name,
        kind: 'GSI',
        indexId: await ctx.catalog.allocateSpaceId(),
        hashKey: keyAttribute(index.keys.hash, definitions),
        ...(index.keys.range === undefined ? {} : { rangeKey: keyAttribute(index.keys.range, definitions) }),
        projection: index.projection,
      };
      next.schema.indexes.push(created);
      next.backfilling = [...building, created.name];
      if (index.throughput !== undefined) next.indexThroughput = { ...next.indexThroughput, [index.name]: index.throughput };
    }
    let deleted: IndexSchema | undefined;
    if (remove !== undefined) {
      deleted = requireGsi(remove.name, 'delete');
      next.schema.indexes = next.schema.indexes.filter((index) => index.name !== remove.name);
      const stillBuilding = building.filter((name) => name !== remove.name);
      if (stillBuilding.length > 0) next.backfilling = stillBuilding;
      else delete next.backfilling;
      if (next.indexThroughput !== undefined) delete next.indexThroughput[remove.name];
    }
    return { previous: record, next, ...(created === undefined ? {} : { created }), ...(deleted === undefined ? {} : { deleted }) };
  };

  return request.tableLock(async () => {
    let update: TableUpdate | undefined;
    const next = (await ctx.catalog.update(tableName!, async (current) => {
      update = await changeTable(current);
      return update.next;
    }))!;
    const { previous, created, deleted } = update!;
    // Writes see the new schema from here on, so the backfill below cannot miss a concurrent write.
    if (deleted !== undefined) await ctx.partitions.dropIndex(previous.schema, deleted.name);
    if (created !== undefined) {
      const indexName = created.name;
      request.background((stop) => backfill(ctx, next.schema, indexName, request, stop));
    }
    return {
      TableDescription: await describeTable(next, ctx, request.region, {
        deletingIndexes: deleted === undefined ? [] : [deleted],
      }),
    };
  });
};

/** One UpdateTable's change: the record it was made to, the next one, the GSI it creates or deletes. */
interface TableUpdate {
  previous: TableRecord;
  next: TableRecord;
  created?: IndexSchema;
  deleted?: IndexSchema;
}

/** Pauses between failed attempts of a backfill: doubling from the first to the last. */
const BACKFILL_RETRY_FIRST_MS = 200;
const BACKFILL_RETRY_MAX_MS = 10_000;

/**
 * Builds a new GSI from the table's items, then marks it ACTIVE (in the cluster: once the GSI's
 * partitions applied every backfilled entry, so a Query right after sees them all). An attempt that
 * fails (its calls' retry budget spent: the cluster unreachable for a while) is made again after a
 * pause (doubling, capped), with no overall deadline: the index stays CREATING until an attempt
 * succeeds, its table or itself is gone (read from the catalog after each failure), or `stop` aborts
 * (the router closing: the next router to start takes the backfill up again). If the index went away
 * meanwhile, entries the backfill wrote after the drop are dropped again; if its table went, nothing
 * is left to do (its partitions, in the cluster, went with it).
 */
export async function backfill(
  ctx: EngineContext,
  schema: TableSchema,
  indexName: string,
  request: Pick<RequestInfo, 'tableLock'>,
  stop: AbortSignal,
): Promise<void> {
  for (let pauseMs = BACKFILL_RETRY_FIRST_MS; ; pauseMs = Math.min(2 * pauseMs, BACKFILL_RETRY_MAX_MS)) {
    try {
      // The router closing stops the wait, not the walk (the next router's call joins it).
      if ((await unlessStopped(ctx.partitions.backfillIndex(schema, indexName), stop)) === undefined) return;
      break;
    } catch (error) {
      if (stop.aborted) return;
      const wanted = await wantedIndex(ctx, schema, indexName);
      if (wanted === 'tableGone') return;
      if (wanted === 'indexGone') break;
      console.error(`shoal router: backfill of index ${indexName} of table ${schema.name} failed, trying again in ${pauseMs} ms:`, error);
      if (!(await pause(pauseMs, stop))) return;
    }
  }
  await request.tableLock(async () => {
    let dropped = false;
    try {
      await ctx.catalog.update(schema.name, (record) => {
        dropped = false;
        const built = schema.indexes.find((candidate) => candidate.name === indexName);
        const wanted = record.schema.indexes.find((candidate) => candidate.name === indexName);
        if (record.schema.tableId !== schema.tableId) return undefined;
        if (wanted === undefined || wanted.indexId !== built?.indexId) {
          dropped = true;
          return undefined;
        }
        if (!record.backfilling?.includes(indexName)) return undefined;
        const backfilling = record.backfilling.filter((name) => name !== indexName);
        const next: TableRecord = { ...record };
        if (backfilling.length > 0) next.backfilling = backfilling;
        else delete next.backfilling;
        return next;
      });
    } catch (error) {
      // The table is gone, and its index's partitions with it: nothing left to mark or drop.
      if (error instanceof DynamoDbError && error.type === 'ResourceNotFoundException') return;
      throw error;
    }
    if (dropped) await ctx.partitions.dropIndex(schema, indexName);
  });
}

/** Whether the index a backfill builds is still wanted: its table and itself in the catalog, with the same ids (`unknown`: the catalog did not answer). */
async function wantedIndex(ctx: EngineContext, schema: TableSchema, indexName: string): Promise<'wanted' | 'tableGone' | 'indexGone' | 'unknown'> {
  let record: TableRecord | undefined;
  try {
    record = await ctx.catalog.get(schema.name);
  } catch {
    return 'unknown';
  }
  if (record === undefined || record.schema.tableId !== schema.tableId) return 'tableGone';
  const built = schema.indexes.find((candidate) => candidate.name === indexName);
  const wanted = record.schema.indexes.find((candidate) => candidate.name === indexName);
  return wanted !== undefined && wanted.indexId === built?.indexId ? 'wanted' : 'indexGone';
}

/** Resolves true after `ms`, false at once when `stop` aborts first. */
async function pause(ms: number, stop: AbortSignal): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const elapsed = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  return (await unlessStopped(elapsed, stop, () => clearTimeout(timer))) !== undefined;
}

/** `work`'s outcome, or undefined once `stop` aborts first (`onStop` runs; the work is left, its failure ignored). */
function unlessStopped<T>(work: Promise<T>, stop: AbortSignal, onStop?: () => void): Promise<{ value: T } | undefined> {
  return new Promise((resolve, reject) => {
    const aborted = (): void => {
      onStop?.();
      resolve(undefined);
    };
    if (stop.aborted) aborted();
    else stop.addEventListener('abort', aborted, { once: true });
    work.then(
      (value) => {
        stop.removeEventListener('abort', aborted);
        resolve({ value });
      },
      (error: unknown) => {
        stop.removeEventListener('abort', aborted);
        reject(error);
      },
    );
  });
}

export const tableOperations: Record<string, RouterOperationHandler> = {
  CreateTable: createTable,
  DescribeTable: describeTableOperation,
  ListTables: listTables,
  DeleteTable: deleteTable,
  UpdateTable: updateTable,
};
